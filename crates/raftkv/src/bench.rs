//! `raftkv bench`: a closed-loop load generator against any RESP endpoints (raftkv, Redis, ...).
//! Each client is a thread with one connection and one request outstanding; latencies go into an
//! HDR histogram; a progress line on stderr shows the rate each second.

use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use client::{Stream, Tls};
use hdrhistogram::Histogram;

#[derive(Clone, Copy, Debug)]
pub enum Workload {
    Set,
    Get,
    Append,
    /// Reads with this probability, writes (SET) otherwise.
    Mixed(f64),
}

impl std::str::FromStr for Workload {
    type Err = String;

    fn from_str(text: &str) -> Result<Workload, String> {
        match text {
            "set" => Ok(Workload::Set),
            "get" => Ok(Workload::Get),
            "append" => Ok(Workload::Append),
            _ => match text.strip_prefix("mixed:").map(str::parse::<f64>) {
                Some(Ok(ratio)) if (0.0..=1.0).contains(&ratio) => Ok(Workload::Mixed(ratio)),
                _ => Err(format!("unknown workload {text:?}: use set, get, append or mixed:R with R the read share in [0, 1]")),
            },
        }
    }
}

pub struct Options {
    pub endpoints: Vec<String>,
    pub clients: usize,
    pub duration: Duration,
    pub workload: Workload,
    pub value_size: usize,
    pub keys: u64,
    pub timeout: Duration,
    /// TLS to the endpoints, and credentials to AUTH with on every connection (nodes with
    /// `--tls-cert`, `--password-file` or `--users-file`).
    pub tls: Option<Tls>,
    pub credentials: Option<client::Credentials>,
}

/// A connection to `endpoint`, over TLS and authenticated as `options` say.
fn connect(endpoint: &str, options: &Options) -> Result<Stream> {
    let mut connection = client::connect(endpoint, options.timeout, options.tls.as_ref())?;
    if let Some(credentials) = &options.credentials {
        if let Some(refusal) = credentials.authenticate(&mut connection)? {
            bail!("{endpoint} refused the credentials: {refusal}");
        }
    }
    Ok(connection)
}

struct Shared {
    done: AtomicBool,
    completed: AtomicU64,
    errors: AtomicU64,
    histogram: Mutex<Histogram<u64>>,
}

pub fn run(options: Options) -> Result<()> {
    if options.endpoints.is_empty() || options.clients == 0 {
        bail!("need at least one endpoint and one client");
    }
    let histogram = Histogram::new_with_bounds(1, 60_000_000, 3).context("creating the latency histogram")?;
    let shared = Arc::new(Shared { done: AtomicBool::new(false), completed: AtomicU64::new(0), errors: AtomicU64::new(0), histogram: Mutex::new(histogram) });
    // Connect everyone before the clock starts, so connection set-up is not measured.
    let mut connections = Vec::new();
    for client in 0..options.clients {
        let endpoint = &options.endpoints[client % options.endpoints.len()];
        connections.push(connect(endpoint, &options).with_context(|| format!("connecting to {endpoint}"))?);
    }
    if matches!(options.workload, Workload::Get | Workload::Mixed(_)) {
        prefill(&mut connections[0], &options)?;
    }
    let started = Instant::now();
    let options = Arc::new(options);
    let threads: Vec<_> = connections
        .into_iter()
        .enumerate()
        .map(|(client, connection)| {
            let (shared, options) = (shared.clone(), options.clone());
            std::thread::spawn(move || client_loop(client as u64, connection, &options, &shared))
        })
        .collect();
    let mut last = 0;
    while started.elapsed() < options.duration {
        std::thread::sleep(Duration::from_secs(1).min(options.duration.saturating_sub(started.elapsed())));
        let completed = shared.completed.load(Ordering::Relaxed);
        let elapsed = started.elapsed().as_secs_f64();
        let width = 30;
        let filled = ((elapsed / options.duration.as_secs_f64()) * width as f64).min(width as f64) as usize;
        eprint!(
            "\r[{}{}] {:>5.1}s {:>9} ops {:>9.0} ops/s now, {} errors   ",
            "#".repeat(filled),
            " ".repeat(width - filled),
            elapsed,
            completed,
            (completed - last) as f64,
            shared.errors.load(Ordering::Relaxed)
        );
        last = completed;
    }
    shared.done.store(true, Ordering::Relaxed);
    for thread in threads {
        let _ = thread.join();
    }
    let elapsed = started.elapsed().as_secs_f64();
    eprintln!();
    let histogram = shared.histogram.lock().map_err(|_| anyhow::anyhow!("a client thread panicked"))?;
    let completed = histogram.len();
    let micros = |quantile: f64| histogram.value_at_quantile(quantile);
    println!("workload {:?}, {} clients, {} endpoint(s), {:.1} s", options.workload, options.clients, options.endpoints.len(), elapsed);
    println!("throughput  {:.0} ops/s ({} ops, {} errors)", completed as f64 / elapsed, completed, shared.errors.load(Ordering::Relaxed));
    println!(
        "latency µs  p50 {}  p90 {}  p99 {}  p99.9 {}  max {}  mean {:.0}",
        micros(0.5),
        micros(0.9),
        micros(0.99),
        micros(0.999),
        histogram.max(),
        histogram.mean()
    );
    Ok(())
}

fn prefill(connection: &mut Stream, options: &Options) -> Result<()> {
    let value = vec![b'v'; options.value_size];
    let mut pending = Vec::new();
    for key in 0..options.keys {
        resp::encode_array_of_bulks(&[b"SET".as_slice(), key_name(key).as_bytes(), &value], &mut pending);
        if pending.len() > 64 * 1024 || key + 1 == options.keys {
            connection.write_all(&pending)?;
            pending.clear();
        }
    }
    // Read one reply per key (pipelined).
    let mut buffer = Vec::new();
    let mut replies = 0;
    let mut chunk = vec![0u8; 64 * 1024];
    while replies < options.keys {
        let read = connection.read(&mut chunk)?;
        if read == 0 {
            bail!("the server closed the connection during the prefill");
        }
        buffer.extend_from_slice(&chunk[..read]);
        let mut consumed = 0;
        while let Some((_, used)) = resp::parse(&buffer[consumed..], &resp::Limits::default())? {
            consumed += used;
            replies += 1;
        }
        buffer.drain(..consumed);
    }
    Ok(())
}

fn key_name(key: u64) -> String {
    format!("bench-{key:08}")
}

fn client_loop(client: u64, mut connection: Stream, options: &Options, shared: &Shared) {
    let (workload, keys, value_size) = (options.workload, options.keys, options.value_size);
    let endpoint = &options.endpoints[client as usize % options.endpoints.len()];
    let mut state = client.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut random = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let value = vec![b'x'; value_size];
    let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("valid bounds");
    let mut out = Vec::new();
    let mut buffer = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    while !shared.done.load(Ordering::Relaxed) {
        let key = key_name(random() % keys.max(1));
        let read = match workload {
            Workload::Get => true,
            Workload::Set | Workload::Append => false,
            Workload::Mixed(ratio) => (random() % 1_000_000) as f64 / 1_000_000.0 < ratio,
        };
        out.clear();
        let verb: &[u8] = match (read, workload) {
            (true, _) => b"GET",
            (false, Workload::Append) => b"APPEND",
            _ => b"SET",
        };
        if read {
            resp::encode_array_of_bulks(&[verb, key.as_bytes()], &mut out);
        } else {
            resp::encode_array_of_bulks(&[verb, key.as_bytes(), &value], &mut out);
        }
        let sent = Instant::now();
        let outcome = connection.write_all(&out).and_then(|()| read_reply(&mut connection, &mut buffer, &mut chunk));
        match outcome {
            Ok(false) => {
                let _ = histogram.record((sent.elapsed().as_micros() as u64).max(1));
                shared.completed.fetch_add(1, Ordering::Relaxed);
            }
            Ok(true) => {
                shared.errors.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => {
                shared.errors.fetch_add(1, Ordering::Relaxed);
                buffer.clear();
                match connect(endpoint, options) {
                    Ok(fresh) => connection = fresh,
                    Err(_) => std::thread::sleep(Duration::from_millis(100)),
                }
            }
        }
    }
    if let Ok(mut total) = shared.histogram.lock() {
        let _ = total.add(&histogram);
    }
}

/// Reads one reply; Ok(true) if it was an error reply.
fn read_reply(connection: &mut Stream, buffer: &mut Vec<u8>, chunk: &mut [u8]) -> std::io::Result<bool> {
    loop {
        match resp::parse(buffer, &resp::Limits::default()) {
            Ok(Some((value, used))) => {
                buffer.drain(..used);
                return Ok(matches!(value, resp::Value::Error(_)));
            }
            Ok(None) => {}
            Err(error) => return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, error.to_string())),
        }
        let read = connection.read(chunk)?;
        if read == 0 {
            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "closed"));
        }
        buffer.extend_from_slice(&chunk[..read]);
    }
}
