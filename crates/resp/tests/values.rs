//! `parse` against `encode`: exact wire forms, round trips, pipelining and every split point.

mod common;

use common::Rng;
use resp::*;

fn parse_all(mut buf: &[u8]) -> Vec<Value> {
    let limits = Limits::default();
    let mut values = Vec::new();
    while let Some((v, used)) = parse(buf, &limits).unwrap() {
        values.push(v);
        buf = &buf[used..];
    }
    assert!(
        buf.is_empty(),
        "left over: {:?}",
        String::from_utf8_lossy(buf)
    );
    values
}

#[test]
fn wire_forms() {
    let cases: &[(Value, &[u8])] = &[
        (Value::ok(), b"+OK\r\n"),
        (Value::error("ERR bad"), b"-ERR bad\r\n"),
        (Value::Integer(-42), b":-42\r\n"),
        (Value::Integer(i64::MIN), b":-9223372036854775808\r\n"),
        (Value::bulk(&b"foo"[..]), b"$3\r\nfoo\r\n"),
        (Value::bulk(Vec::new()), b"$0\r\n\r\n"),
        (Value::nil(), b"$-1\r\n"),
        (Value::Array(None), b"*-1\r\n"),
        (Value::Array(Some(vec![])), b"*0\r\n"),
        (
            Value::Array(Some(vec![
                Value::Integer(1),
                Value::Array(Some(vec![Value::nil()])),
            ])),
            b"*2\r\n:1\r\n*1\r\n$-1\r\n",
        ),
    ];
    for (value, wire) in cases {
        assert_eq!(value.to_bytes(), *wire, "{value:?}");
        assert_eq!(
            parse(wire, &Limits::default()),
            Ok(Some((value.clone(), wire.len())))
        );
    }
}

#[test]
fn helpers_match_encode() {
    let mut out = Vec::new();
    encode_simple("OK", &mut out);
    encode_error("ERR x", &mut out);
    encode_integer(7, &mut out);
    encode_bulk(b"v", &mut out);
    encode_nil(&mut out);
    encode_array_of_bulks(&[&b"SET"[..], b"k", b"v"], &mut out);
    assert_eq!(
        out,
        &b"+OK\r\n-ERR x\r\n:7\r\n$1\r\nv\r\n$-1\r\n*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n"[..]
    );
    let request = &out[out.iter().position(|&b| b == b'*').unwrap()..];
    let parsed = parse_command(request, &Limits::default()).unwrap().unwrap();
    assert_eq!(
        parsed,
        (
            vec![b"SET".to_vec(), b"k".to_vec(), b"v".to_vec()],
            request.len()
        )
    );
}

#[test]
fn line_breaks_in_text_become_spaces() {
    assert_eq!(Value::error("ERR a\r\nb").to_bytes(), b"-ERR a  b\r\n");
    assert_eq!(Value::Simple("x\ny".into()).to_bytes(), b"+x y\r\n");
}

#[test]
fn invalid_utf8_text_is_replaced_not_rejected() {
    let parsed = parse(b"-ERR \xff\r\n", &Limits::default())
        .unwrap()
        .unwrap();
    assert_eq!(parsed, (Value::Error("ERR \u{fffd}".into()), 8));
}

#[test]
fn every_kind_round_trips() {
    for v in common::samples() {
        let wire = v.to_bytes();
        assert_eq!(
            parse(&wire, &Limits::default()),
            Ok(Some((v.clone(), wire.len()))),
            "{v:?}"
        );
    }
}

#[test]
fn random_nested_values_round_trip() {
    let mut rng = Rng::new(1);
    let limits = Limits::default();
    for _ in 0..20_000 {
        let v = common::value(&mut rng, 6);
        let wire = v.to_bytes();
        assert_eq!(
            parse(&wire, &limits),
            Ok(Some((v.clone(), wire.len()))),
            "{v:?}"
        );
        // Trailing bytes of a next frame do not change the answer.
        let mut more = wire.clone();
        more.extend_from_slice(b"+next\r\n");
        assert_eq!(parse(&more, &limits), Ok(Some((v, wire.len()))));
    }
}

#[test]
fn every_prefix_of_a_frame_is_incomplete() {
    let mut rng = Rng::new(2);
    let limits = Limits::default();
    let mut values = common::samples();
    values.extend((0..300).map(|_| common::value(&mut rng, 4)));
    for v in values {
        let wire = v.to_bytes();
        for cut in 0..wire.len() {
            assert_eq!(parse(&wire[..cut], &limits), Ok(None), "{v:?} cut at {cut}");
        }
    }
}

/// A pipelined buffer delivered in two reads split at every byte, then at every pair of bytes,
/// parsed as a server would: drain what is complete after each read.
#[test]
fn pipelined_buffer_split_anywhere() {
    let values = common::samples();
    let wire: Vec<u8> = values.iter().flat_map(Value::to_bytes).collect();
    assert_eq!(parse_all(&wire), values);
    let limits = Limits::default();
    let deliver = |cuts: &[usize]| {
        let mut buf = Vec::new();
        let mut got = Vec::new();
        let mut from = 0;
        for &to in cuts.iter().chain([wire.len()].iter()) {
            buf.extend_from_slice(&wire[from..to]);
            from = to;
            while let Some((v, used)) = parse(&buf, &limits).unwrap() {
                got.push(v);
                buf.drain(..used);
            }
        }
        assert!(buf.is_empty());
        assert_eq!(got, values, "cuts {cuts:?}");
    };
    for a in 0..=wire.len() {
        deliver(&[a]);
    }
    for a in (0..=wire.len()).step_by(3) {
        for b in a..=wire.len() {
            deliver(&[a, b]);
        }
    }
    deliver(&(0..wire.len()).collect::<Vec<_>>()); // one byte at a time
}
