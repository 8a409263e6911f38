//! The resumable command parser: the same results as parsing from scratch, at every split point,
//! for work in proportion to the bytes (before, a partial command was scanned from its start on
//! every read: a 1M-argument DEL trickled in cost seconds of CPU).

use resp::{encode_array_of_bulks, parse_command_into, parse_command_resumable, ArgBuf, Limits, Resume};

fn args_of(args: &ArgBuf) -> Vec<Vec<u8>> {
    args.iter().map(<[u8]>::to_vec).collect()
}

/// Feeds `input` in pieces of `chunk` bytes, parsing after each: every command and error, in order.
fn parse_in_chunks(input: &[u8], chunk: usize, limits: &Limits) -> (Vec<Result<Vec<Vec<u8>>, resp::ParseError>>, Resume) {
    let (mut buffer, mut out, mut resume, mut args) = (Vec::new(), Vec::new(), Resume::default(), ArgBuf::new());
    for piece in input.chunks(chunk.max(1)) {
        buffer.extend_from_slice(piece);
        loop {
            match parse_command_resumable(&buffer, limits, &mut args, &mut resume) {
                Ok(Some(used)) => {
                    out.push(Ok(args_of(&args)));
                    buffer.drain(..used);
                }
                Ok(None) => break,
                Err(error) => {
                    out.push(Err(error));
                    return (out, resume);
                }
            }
        }
    }
    (out, resume)
}

fn parse_whole(input: &[u8], limits: &Limits) -> Vec<Result<Vec<Vec<u8>>, resp::ParseError>> {
    let (mut rest, mut out, mut args) = (input, Vec::new(), ArgBuf::new());
    loop {
        match parse_command_into(rest, limits, &mut args) {
            Ok(Some(used)) => {
                out.push(Ok(args_of(&args)));
                rest = &rest[used..];
            }
            Ok(None) => return out,
            Err(error) => {
                out.push(Err(error));
                return out;
            }
        }
    }
}

#[test]
fn resumed_parsing_agrees_with_parsing_whole_at_every_split() {
    let mut input = Vec::new();
    encode_array_of_bulks(&["SET", "key", "a value\r\nwith CRLF"], &mut input);
    input.extend_from_slice(b"*0\r\nPING\r\n");
    encode_array_of_bulks(&["DEL", "a", "b", "", "c"], &mut input);
    input.extend_from_slice(b"*2\r\n$3\r\nGET\r\n:1\r\n");
    let limits = Limits::default();
    let expected = parse_whole(&input, &limits);
    assert_eq!(expected.len(), 5, "{expected:?}");
    assert!(expected.last().is_some_and(Result::is_err));
    for chunk in 1..=input.len() {
        assert_eq!(parse_in_chunks(&input, chunk, &limits).0, expected, "pieces of {chunk} bytes");
    }
}

#[test]
fn a_command_trickled_in_costs_work_in_proportion_to_its_size() {
    let keys: Vec<String> = (0..100_000).map(|k| format!("key{k}")).collect();
    let mut words = vec!["DEL"];
    words.extend(keys.iter().map(String::as_str));
    let mut input = Vec::new();
    encode_array_of_bulks(&words, &mut input);
    let (out, resume) = parse_in_chunks(&input, 7, &Limits::default());
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].as_ref().map(Vec::len), Ok(100_001));
    // Each byte is scanned about once while it arrives, plus once more to copy the whole command.
    let bound = 3 * input.len() as u64;
    assert!(resume.scanned() <= bound, "scanned {} bytes for a {}-byte command", resume.scanned(), input.len());
}

#[test]
fn an_inline_command_trickled_in_is_parsed_once_its_line_ends() {
    let line = format!("SET key {}\r\n", "v".repeat(60_000));
    let (out, resume) = parse_in_chunks(line.as_bytes(), 1, &Limits::default());
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].as_ref().map(|args| args[2].len()), Ok(60_000));
    assert!(resume.scanned() <= 2 * line.len() as u64, "scanned {} bytes for a {}-byte line", resume.scanned(), line.len());
    // Too long to be a line: refused once the limit is passed, not at the line's end.
    let limits = Limits { max_inline_bytes: 100, ..Limits::default() };
    let (out, _) = parse_in_chunks("x".repeat(1000).as_bytes(), 10, &limits);
    assert!(matches!(out[..], [Err(resp::ParseError::InlineTooLong { .. })]), "{out:?}");
}
