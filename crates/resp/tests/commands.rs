//! `parse_command`: arrays of bulk strings and inline commands.

use resp::*;

fn args(words: &[&str]) -> Vec<Vec<u8>> {
    words.iter().map(|w| w.as_bytes().to_vec()).collect()
}

fn command(buf: &[u8]) -> Result<Option<(Args, usize)>, ParseError> {
    parse_command(buf, &Limits::default())
}

#[test]
fn multibulk() {
    let wire = b"*3\r\n$3\r\nSET\r\n$1\r\na\r\n$5\r\nb\r\nc\0\r\n";
    assert_eq!(
        command(wire),
        Ok(Some((
            vec![b"SET".to_vec(), b"a".to_vec(), b"b\r\nc\0".to_vec()],
            wire.len()
        )))
    );
    assert_eq!(command(b"*1\r\n$0\r\n\r\n"), Ok(Some((vec![vec![]], 10))));
}

#[test]
fn empty_requests_have_no_arguments() {
    for wire in [&b"*0\r\n"[..], b"*-1\r\n", b"\r\n", b"\n", b"   \t \r\n"] {
        assert_eq!(command(wire), Ok(Some((vec![], wire.len()))), "{wire:?}");
    }
}

#[test]
fn multibulk_holds_only_bulk_strings() {
    assert_eq!(
        command(b"*2\r\n$3\r\nGET\r\n:1\r\n"),
        Err(ParseError::ExpectedBulk(b':'))
    );
    assert_eq!(
        command(b"*1\r\n*1\r\n"),
        Err(ParseError::ExpectedBulk(b'*'))
    );
    assert_eq!(command(b"*1\r\n$-1\r\n"), Err(ParseError::NilArgument));
    assert_eq!(
        command(b"*1\r\n$-2\r\n"),
        Err(ParseError::InvalidBulkLength)
    );
    assert_eq!(command(b"*-2\r\n"), Err(ParseError::InvalidArrayLength));
    assert_eq!(command(b"*x\r\n"), Err(ParseError::InvalidArrayLength));
    assert_eq!(
        command(b"*1\r\n$3\r\nGETX\r\n"),
        Err(ParseError::ExpectedCrlf)
    );
    // Errors show as soon as the offending byte arrives, before the rest of the frame.
    assert_eq!(
        command(b"*9\r\n$3\r\nGET\r\n+"),
        Err(ParseError::ExpectedBulk(b'+'))
    );
}

#[test]
fn inline_words() {
    assert_eq!(command(b"PING\r\n"), Ok(Some((args(&["PING"]), 6))));
    assert_eq!(
        command(b"SET a b\r\n"),
        Ok(Some((args(&["SET", "a", "b"]), 9)))
    );
    // redis-cli and telnet users may end lines with a bare \n; extra blanks separate nothing.
    assert_eq!(
        command(b"  SET\ta   b \n"),
        Ok(Some((args(&["SET", "a", "b"]), 13)))
    );
    assert_eq!(
        command(b"get k\nPING\n"),
        Ok(Some((args(&["get", "k"]), 6)))
    );
    // A line not starting with '*' is inline even if it starts like another RESP type.
    assert_eq!(command(b"$3\r\n"), Ok(Some((args(&["$3"]), 4))));
}

#[test]
fn inline_quotes() {
    let cases: &[(&[u8], &[&[u8]])] = &[
        (b"SET \"a b\" \"\"\r\n", &[b"SET", b"a b", b""]),
        (
            b"SET k \"say \\\"hi\\\"\\n\"\n",
            &[b"SET", b"k", b"say \"hi\"\n"],
        ),
        (
            b"SET k \"\\x41\\x00\\xff\\xZZ\\\\\"\n",
            &[b"SET", b"k", b"A\0\xffxZZ\\"],
        ),
        (
            b"SET k 'it\\'s \"raw\" \\n'\n",
            &[b"SET", b"k", b"it's \"raw\" \\n"],
        ),
        (b"SET k pre\"fix\"\n", &[b"SET", b"k", b"prefix"]),
    ];
    for (wire, expected) in cases {
        let expected: Vec<Vec<u8>> = expected.iter().map(|a| a.to_vec()).collect();
        assert_eq!(
            command(wire),
            Ok(Some((expected, wire.len()))),
            "{:?}",
            String::from_utf8_lossy(wire)
        );
    }
    for wire in [
        &b"SET \"a\r\n"[..],
        b"SET 'a\n",
        b"SET \"a\"b\n",
        b"SET 'a'b\n",
        b"SET \"a\\\"\n",
    ] {
        assert_eq!(
            command(wire),
            Err(ParseError::UnbalancedQuotes),
            "{:?}",
            String::from_utf8_lossy(wire)
        );
    }
}

#[test]
fn partial_requests_wait() {
    for wire in [
        &b""[..],
        b"SET a",
        b"SET a\r",
        b"SET \"a",
        b"*2\r\n$3\r\nGET\r\n$1\r\nk\r",
        b"*",
        b"*2\r\n$",
    ] {
        assert_eq!(command(wire), Ok(None), "{wire:?}");
    }
}

/// Mixed inline and multibulk requests, delivered in two reads split at every byte.
#[test]
fn pipelined_requests_split_anywhere() {
    let requests: Vec<Vec<Vec<u8>>> = vec![
        args(&["PING"]),
        args(&["SET", "k", "v 1"]),
        vec![],
        args(&["GET", "k"]),
        vec![b"APPEND".to_vec(), b"k".to_vec(), b"\r\n\0".to_vec()],
        args(&["DEL", "a", "b"]),
        vec![],
        args(&["INFO"]),
    ];
    let mut wire = Vec::new();
    wire.extend_from_slice(b"PING\r\n");
    wire.extend_from_slice(b"SET k \"v 1\"\n");
    wire.extend_from_slice(b"\r\n");
    encode_array_of_bulks(&[&b"GET"[..], b"k"], &mut wire);
    encode_array_of_bulks(&[&b"APPEND"[..], b"k", b"\r\n\0"], &mut wire);
    wire.extend_from_slice(b"DEL a b\r\n*0\r\nINFO\n");
    let limits = Limits::default();
    for cut in 0..=wire.len() {
        let mut buf = Vec::new();
        let mut got = Vec::new();
        for part in [&wire[..cut], &wire[cut..]] {
            buf.extend_from_slice(part);
            while let Some((a, used)) = parse_command(&buf, &limits).unwrap() {
                got.push(a);
                buf.drain(..used);
            }
        }
        assert!(buf.is_empty());
        assert_eq!(got, requests, "cut at {cut}");
    }
}
