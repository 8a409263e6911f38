//! Limits and malformed headers fail without allocating, and lengths within limits allocate
//! nothing until their data is here. A counting allocator checks the "without allocating".

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use resp::*;

struct Counting;

thread_local! {
    // Per thread, so that tests running in parallel do not see each other's allocations.
    static ALLOCATED: Cell<usize> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATED.try_with(|a| a.set(a.get() + layout.size()));
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

/// The result of `f` and the bytes it allocated on this thread.
fn allocated<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let before = ALLOCATED.with(Cell::get);
    let result = f();
    (result, ALLOCATED.with(Cell::get) - before)
}

/// At most this many bytes may be allocated to answer "incomplete" or "error": room for the
/// stack of open arrays the scan keeps (8 levels of 32 bytes, grown by doubling), nothing that
/// grows with a declared length.
const LEAN: usize = 1024;

/// `parse`, checking that it allocates (almost) nothing.
fn parse_lean(wire: &[u8], limits: &Limits) -> Result<Option<(Value, usize)>, ParseError> {
    let (result, bytes) = allocated(|| parse(wire, limits));
    assert!(
        bytes <= LEAN,
        "parse allocated {bytes} bytes, giving {result:?}"
    );
    result
}

/// `parse_command`, checking that it allocates (almost) nothing.
fn command_lean(wire: &[u8], limits: &Limits) -> Result<Option<(Args, usize)>, ParseError> {
    let (result, bytes) = allocated(|| parse_command(wire, limits));
    assert!(
        bytes <= LEAN,
        "parse_command allocated {bytes} bytes, giving {result:?}"
    );
    result
}

#[test]
fn defaults() {
    let l = Limits::default();
    assert_eq!(
        (
            l.max_bulk_bytes,
            l.max_array_len,
            l.max_inline_bytes,
            l.max_depth
        ),
        (512 << 20, 1 << 20, 64 << 10, 8)
    );
}

#[test]
fn announced_lengths_allocate_nothing_before_the_data() {
    let l = Limits::default();
    for wire in [
        &b"$536870912\r\n"[..],
        b"$536870912\r\nsome of it",
        b"*1048576\r\n",
        b"*1048576\r\n$536870912\r\nabc",
        b"*8\r\n*8\r\n*8\r\n*8\r\n*8\r\n*8\r\n*8\r\n*8\r\n",
    ] {
        assert_eq!(parse_lean(wire, &l), Ok(None));
    }
    for wire in [
        &b"*1048576\r\n"[..],
        b"*1048576\r\n$536870912\r\nabc",
        b"*2\r\n$3\r\nGET\r\n$536870912\r\n",
    ] {
        assert_eq!(command_lean(wire, &l), Ok(None));
    }
}

#[test]
fn oversized_bulk() {
    let l = Limits::default();
    let too_large = |len| {
        Err(ParseError::BulkTooLarge {
            len,
            limit: 512 << 20,
        })
    };
    let command_too_large = |len| {
        Err(ParseError::BulkTooLarge {
            len,
            limit: 512 << 20,
        })
    };
    assert_eq!(parse_lean(b"$999999999\r\n", &l), too_large(999_999_999));
    assert_eq!(
        parse_lean(b"$536870913\r\n", &l),
        too_large((512 << 20) + 1)
    );
    assert_eq!(
        parse_lean(b"*1\r\n$999999999\r\n", &l),
        too_large(999_999_999)
    );
    assert_eq!(
        parse_lean(b"$9223372036854775807\r\n", &l),
        too_large(i64::MAX as u64)
    );
    assert_eq!(
        command_lean(b"*1\r\n$999999999\r\n", &l),
        command_too_large(999_999_999)
    );
    let small = Limits {
        max_bulk_bytes: 3,
        ..Limits::default()
    };
    assert!(parse(b"$3\r\nabc\r\n", &small).unwrap().is_some());
    assert_eq!(
        parse_lean(b"$4\r\n", &small),
        Err(ParseError::BulkTooLarge { len: 4, limit: 3 })
    );
}

#[test]
fn too_long_array() {
    let l = Limits::default();
    let too_long = Err(ParseError::ArrayTooLong {
        len: (1 << 20) + 1,
        limit: 1 << 20,
    });
    assert_eq!(parse_lean(b"*1048577\r\n", &l), too_long);
    assert_eq!(command_lean(b"*1048577\r\n", &l), too_long.map(|_| None));
    let small = Limits {
        max_array_len: 2,
        ..Limits::default()
    };
    assert!(parse(b"*2\r\n:1\r\n:2\r\n", &small).unwrap().is_some());
    assert_eq!(
        parse_lean(b"*3\r\n", &small),
        Err(ParseError::ArrayTooLong { len: 3, limit: 2 })
    );
    assert_eq!(
        command_lean(b"*3\r\n", &small),
        Err(ParseError::ArrayTooLong { len: 3, limit: 2 })
    );
    assert_eq!(
        parse_command(b"a b c\n", &small),
        Err(ParseError::ArrayTooLong { len: 3, limit: 2 })
    );
}

#[test]
fn too_deep_nesting() {
    let l = Limits::default();
    let too_deep = Err(ParseError::NestingTooDeep { limit: 8 });
    let nested = |depth: usize| [b"*1\r\n".repeat(depth), b":1\r\n".to_vec()].concat();
    assert!(parse(&nested(8), &l).unwrap().is_some());
    assert_eq!(parse_lean(&nested(9), &l), too_deep);
    // Empty arrays count too, and the error comes before the length is read.
    assert_eq!(
        parse_lean(&[b"*1\r\n".repeat(8), b"*0\r\n".to_vec()].concat(), &l),
        too_deep
    );
    assert_eq!(
        parse_lean(&[b"*1\r\n".repeat(8), b"*".to_vec()].concat(), &l),
        too_deep
    );
    // A million levels: rejected at the ninth, with no recursion either way.
    assert_eq!(parse_lean(&b"*1\r\n".repeat(1_000_000), &l), too_deep);
    // The parser does not recurse, so even unlimited depth cannot overflow its stack (the value,
    // once built, is another matter: dropping a tree recurses, hence the limit).
    let unlimited = Limits {
        max_depth: usize::MAX,
        ..Limits::default()
    };
    assert_eq!(parse(&b"*1\r\n".repeat(1_000_000), &unlimited), Ok(None));
    assert!(parse(&nested(1000), &unlimited).unwrap().is_some());
    let flat = Limits {
        max_depth: 0,
        ..Limits::default()
    };
    assert_eq!(
        parse_lean(b"*0\r\n", &flat),
        Err(ParseError::NestingTooDeep { limit: 0 })
    );
    assert_eq!(
        command_lean(b"*0\r\n", &flat),
        Err(ParseError::NestingTooDeep { limit: 0 })
    );
    assert!(parse(b":1\r\n", &flat).unwrap().is_some());
}

#[test]
fn oversized_lines() {
    let l = Limits::default();
    let limit = 64 << 10;
    let long = vec![b'a'; limit + 1];
    assert_eq!(
        command_lean(&long, &l),
        Err(ParseError::InlineTooLong { limit })
    );
    assert_eq!(
        command_lean(&[&long[..], b"\n"].concat(), &l),
        Err(ParseError::InlineTooLong { limit })
    );
    // Exactly at the limit, the line may still end.
    assert_eq!(
        command_lean(&[&long[..limit], b"\r"].concat(), &l),
        Ok(None)
    );
    assert!(parse_command(&[&long[..limit], b"\r\n"].concat(), &l)
        .unwrap()
        .is_some());
    assert_eq!(
        parse_lean(&[b"+", &long[..]].concat(), &l),
        Err(ParseError::LineTooLong { limit })
    );
    assert_eq!(
        parse_lean(&[b"-", &long[..]].concat(), &l),
        Err(ParseError::LineTooLong { limit })
    );
    assert_eq!(parse_lean(&[b"+", &long[..limit]].concat(), &l), Ok(None));

    let small = Limits {
        max_inline_bytes: 4,
        ..Limits::default()
    };
    let too_long = Err(ParseError::InlineTooLong { limit: 4 });
    assert_eq!(
        parse_command(b"PING\r\n", &small),
        Ok(Some((vec![b"PING".to_vec()], 6)))
    );
    assert_eq!(
        parse_command(b"PING\n", &small),
        Ok(Some((vec![b"PING".to_vec()], 5)))
    );
    assert_eq!(command_lean(b"PINGS", &small), too_long);
    assert_eq!(command_lean(b"PINGS\n", &small), too_long);
    assert_eq!(command_lean(b"PING\r", &small), Ok(None));
    assert_eq!(command_lean(b"PINGS\r", &small), too_long);
    assert_eq!(command_lean(b"PING\r\r", &small), too_long);
    assert_eq!(
        parse_lean(b"+PONGS", &small),
        Err(ParseError::LineTooLong { limit: 4 })
    );

    // Integer lines are short whatever the limit: a 21st byte without CRLF is an error.
    assert_eq!(
        parse_lean(b":123456789012345678901", &l),
        Err(ParseError::InvalidInteger)
    );
    assert_eq!(
        parse_lean(b"$123456789012345678901", &l),
        Err(ParseError::InvalidBulkLength)
    );
    assert_eq!(
        parse_lean(b"*123456789012345678901", &l),
        Err(ParseError::InvalidArrayLength)
    );
    assert_eq!(
        command_lean(b"*123456789012345678901", &l),
        Err(ParseError::InvalidArrayLength)
    );
    assert_eq!(parse_lean(b":12345678901234567890", &l), Ok(None));
}

#[test]
fn malformed_frames() {
    let l = Limits::default();
    let cases: &[(&[u8], ParseError)] = &[
        (b"$-2\r\n", ParseError::InvalidBulkLength),
        (b"$-100\r\n", ParseError::InvalidBulkLength),
        (b"*-2\r\n", ParseError::InvalidArrayLength),
        (b"$\r\n", ParseError::InvalidBulkLength),
        (b"$+3\r\n", ParseError::InvalidBulkLength),
        (b"$ 3\r\n", ParseError::InvalidBulkLength),
        (b"$3x\r\n", ParseError::InvalidBulkLength),
        (b"$99999999999999999999\r\n", ParseError::InvalidBulkLength),
        (b":\r\n", ParseError::InvalidInteger),
        (b":1.5\r\n", ParseError::InvalidInteger),
        (b":9223372036854775808\r\n", ParseError::InvalidInteger),
        (b"$3\n", ParseError::ExpectedCrlf),
        (b"$3\rx", ParseError::ExpectedCrlf),
        (b"+OK\n", ParseError::ExpectedCrlf),
        (b"+O\rK\r\n", ParseError::ExpectedCrlf),
        (b"$3\r\nabcd\r\n", ParseError::ExpectedCrlf),
        (b"$3\r\nabc\n", ParseError::ExpectedCrlf),
        (b"$3\r\nabc\rx", ParseError::ExpectedCrlf),
        (b"*1\r\n!", ParseError::UnknownType(b'!')),
        (b"PING\r\n", ParseError::UnknownType(b'P')),
        (b"\0", ParseError::UnknownType(0)),
    ];
    for (wire, error) in cases {
        assert_eq!(
            parse_lean(wire, &l),
            Err(error.clone()),
            "{:?}",
            String::from_utf8_lossy(wire)
        );
    }
}

#[test]
fn error_messages_say_what_was_wrong() {
    let cases = [
        (ParseError::InvalidBulkLength, "invalid bulk length"),
        (
            ParseError::BulkTooLarge { len: 10, limit: 5 },
            "bulk too large (10 > 5)",
        ),
        (ParseError::ExpectedCrlf, "expected CRLF"),
        (
            ParseError::NestingTooDeep { limit: 8 },
            "nesting too deep (over 8 levels)",
        ),
        (ParseError::InvalidInteger, "invalid integer"),
        (ParseError::UnknownType(b'\n'), "unknown type byte '\\n'"),
        (ParseError::ExpectedBulk(b':'), "expected '$', got ':'"),
    ];
    for (error, message) in cases {
        assert_eq!(error.to_string(), message);
    }
}
