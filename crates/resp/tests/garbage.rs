//! Arbitrary bytes never panic either parser, and every answer is consistent: a frame parses the
//! same alone, its encoding parses back to it, and a prefix of the input is either incomplete or
//! gets the same answer (so reads split anywhere cannot change the outcome).

mod common;

use common::Rng;
use resp::*;

/// Default limits and tiny ones, so that the limit checks themselves get exercised.
fn limit_sets() -> [Limits; 2] {
    let tiny = Limits {
        max_bulk_bytes: 8,
        max_array_len: 4,
        max_inline_bytes: 8,
        max_depth: 2,
    };
    [Limits::default(), tiny]
}

/// Bytes that mean something to the parsers are likelier than others, so that the random inputs
/// get past the first byte often.
fn garbage(rng: &mut Rng, max_len: usize) -> Vec<u8> {
    let len = rng.below(max_len + 1);
    let alphabet = b"+-:$*\r\n\r\n0123456789-1 \"'\\xaA";
    (0..len)
        .map(|_| {
            if rng.below(4) == 0 {
                rng.next_u64() as u8
            } else {
                *rng.pick(alphabet)
            }
        })
        .collect()
}

/// `buf` with a few random edits: bytes replaced, inserted or removed.
fn mutate(rng: &mut Rng, mut buf: Vec<u8>) -> Vec<u8> {
    for _ in 0..1 + rng.below(3) {
        let at = rng.below(buf.len() + 1);
        let byte = if rng.below(2) == 0 {
            *rng.pick(b"\r\n$*:+-0123456789")
        } else {
            rng.next_u64() as u8
        };
        match rng.below(3) {
            0 if at < buf.len() => buf[at] = byte,
            1 => buf.insert(at, byte),
            _ if at < buf.len() => drop(buf.remove(at)),
            _ => {}
        }
    }
    buf
}

/// How often each answer came up, to show the inputs reach every outcome.
#[derive(Default, Debug)]
struct Tally {
    frames: usize,
    incomplete: usize,
    errors: usize,
    requests: usize,
}

impl Tally {
    fn add(&mut self, buf: &[u8], limits: &Limits) {
        match parse(buf, limits) {
            Ok(Some(_)) => self.frames += 1,
            Ok(None) => self.incomplete += 1,
            Err(_) => self.errors += 1,
        }
        if matches!(parse_command(buf, limits), Ok(Some((args, _))) if !args.is_empty()) {
            self.requests += 1;
        }
    }

    fn assert_all_at_least(&self, n: usize) {
        eprintln!("{self:?}");
        assert!(
            self.frames
                .min(self.incomplete)
                .min(self.errors)
                .min(self.requests)
                >= n,
            "{self:?}"
        );
    }
}

/// Runs both parsers on `buf` and on its prefixes (`cuts` of them, chosen at random, or all if
/// `cuts` is None) and checks their answers agree.
fn check(rng: &mut Rng, buf: &[u8], limits: &Limits, cuts: Option<usize>) {
    let whole = parse(buf, limits);
    if let Ok(Some((value, used))) = &whole {
        assert!(*used > 0 && *used <= buf.len());
        assert_eq!(parse(&buf[..*used], limits), whole, "the frame alone");
        let wire = value.to_bytes();
        assert_eq!(
            parse(&wire, &Limits::default()),
            Ok(Some((value.clone(), wire.len()))),
            "re-encoded"
        );
    }
    let command = parse_command(buf, limits);
    // The reusable-buffer form agrees exactly, whatever the buffer held before.
    let mut reused = ArgBuf::new();
    let _ = parse_command_into(b"*2\r\n$3\r\nold\r\n$4\r\nargs\r\n", limits, &mut reused);
    let into = parse_command_into(buf, limits, &mut reused);
    match (&command, into) {
        (Ok(Some((args, used))), Ok(Some(into_used))) => {
            assert_eq!((reused.iter().map(<[u8]>::to_vec).collect::<Vec<_>>(), into_used), (args.clone(), *used), "{buf:?}");
        }
        (expected, into) => assert_eq!(expected.clone().map(|found| found.map(|(_, used)| used)), into, "{buf:?}"),
    }
    if let Ok(Some((_, used))) = &command {
        assert!(*used > 0 && *used <= buf.len());
        assert_eq!(
            parse_command(&buf[..*used], limits),
            command,
            "the request alone"
        );
    }
    let prefixes: Vec<usize> = match cuts {
        None => (0..buf.len()).collect(),
        Some(n) => (0..n).map(|_| rng.below(buf.len() + 1)).collect(),
    };
    for cut in prefixes {
        let part = parse(&buf[..cut], limits);
        match &whole {
            Ok(Some((_, used))) if cut >= *used => assert_eq!(part, whole),
            _ => assert!(
                part == Ok(None) || part == whole,
                "{buf:?} cut at {cut}: {part:?} vs {whole:?}"
            ),
        }
        let part = parse_command(&buf[..cut], limits);
        match &command {
            Ok(Some((_, used))) if cut >= *used => assert_eq!(part, command),
            _ => assert!(
                part == Ok(None) || part == command,
                "{buf:?} cut at {cut}: {part:?} vs {command:?}"
            ),
        }
    }
}

#[test]
fn random_bytes() {
    let mut rng = Rng::new(0x5eed);
    let mut tally = Tally::default();
    for _ in 0..100_000 {
        let buf = garbage(&mut rng, 64);
        tally.add(&buf, &Limits::default());
        for limits in &limit_sets() {
            check(&mut rng, &buf, limits, Some(2));
        }
    }
    tally.assert_all_at_least(100);
}

#[test]
fn mutated_frames() {
    let mut rng = Rng::new(0xbad);
    let mut tally = Tally::default();
    for i in 0..100_000 {
        let frames = 1 + rng.below(3);
        let wire: Vec<u8> = (0..frames)
            .flat_map(|_| common::value(&mut rng, 3).to_bytes())
            .collect();
        let buf = mutate(&mut rng, wire);
        tally.add(&buf, &Limits::default());
        // Every prefix for some inputs, a few for the rest, to keep the test quick.
        let cuts = if i % 20 == 0 { None } else { Some(3) };
        for limits in &limit_sets() {
            check(&mut rng, &buf, limits, cuts);
        }
    }
    tally.assert_all_at_least(1000);
}

#[test]
fn mutated_requests() {
    let mut rng = Rng::new(0xc0de);
    let mut tally = Tally::default();
    for _ in 0..20_000 {
        let mut wire = Vec::new();
        let words: Vec<Vec<u8>> = (0..rng.below(4)).map(|_| garbage(&mut rng, 6)).collect();
        if rng.below(2) == 0 {
            encode_array_of_bulks(&words, &mut wire);
        } else {
            for w in &words {
                wire.extend_from_slice(w);
                wire.push(b' ');
            }
            wire.extend_from_slice(if rng.below(2) == 0 { b"\r\n" } else { b"\n" });
        }
        let buf = mutate(&mut rng, wire);
        tally.add(&buf, &Limits::default());
        for limits in &limit_sets() {
            check(&mut rng, &buf, limits, None);
        }
    }
    tally.assert_all_at_least(100);
}

#[test]
fn long_random_buffers() {
    let mut rng = Rng::new(42);
    for _ in 0..200 {
        let buf = garbage(&mut rng, 8192);
        for limits in &limit_sets() {
            check(&mut rng, &buf, limits, Some(20));
        }
    }
}
