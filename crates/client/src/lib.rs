//! # client: raftkv's own Rust client
//!
//! Talks RESP to any node (followers forward to the leader). What it adds over a plain Redis
//! client is exactly-once writes: it picks a random client id, numbers its writes, and sends each
//! as `TAGGED <client-id> <seq> SET|APPEND|DEL ...`; when a write fails in a way that leaves its
//! outcome unknown (timeout, dropped connection, leader change) it retries the same tag, at another
//! node if need be, and the servers' duplicate table applies it once. Blocking (a CLI and tests
//! need nothing more); TLS with rustls for nodes that serve it (`Tls`).

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

pub use resp::Value;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("no endpoint given")]
    NoEndpoints,
    #[error("the server refused the command: {0}")]
    Refused(String),
    #[error("gave up after {attempts} attempts over {elapsed:?}; last error: {last}")]
    Unavailable { attempts: u32, elapsed: Duration, last: String },
    #[error("unexpected reply: {0:?}")]
    UnexpectedReply(Value),
    #[error("TLS: {0}")]
    Tls(String),
}

/// TLS to nodes started with `--tls-cert`: the CA that signed their certificates (as `raftkv
/// certs` writes it, `ca.pem`) and, for nodes with `--tls-client-ca`, this client's own
/// certificate and key. A node's certificate must name the host the client dials.
#[derive(Clone)]
pub struct Tls(Arc<rustls::ClientConfig>);

impl Tls {
    pub fn from_files(ca: &Path, identity: Option<(&Path, &Path)>) -> Result<Tls, ClientError> {
        let failed = |path: &Path, error: &dyn std::fmt::Display| ClientError::Tls(format!("{}: {error}", path.display()));
        let mut roots = rustls::RootCertStore::empty();
        for certificate in CertificateDer::pem_file_iter(ca).map_err(|error| failed(ca, &error))? {
            roots.add(certificate.map_err(|error| failed(ca, &error))?).map_err(|error| failed(ca, &error))?;
        }
        if roots.is_empty() {
            return Err(failed(ca, &"no certificate in it"));
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|error| ClientError::Tls(error.to_string()))?
            .with_root_certificates(roots);
        let config = match identity {
            None => builder.with_no_client_auth(),
            Some((cert, key)) => {
                let chain = CertificateDer::pem_file_iter(cert).and_then(|certificates| certificates.collect::<Result<Vec<_>, _>>()).map_err(|error| failed(cert, &error))?;
                let key_der = PrivateKeyDer::from_pem_file(key).map_err(|error| failed(key, &error))?;
                builder.with_client_auth_cert(chain, key_der).map_err(|error| failed(cert, &error))?
            }
        };
        Ok(Tls(Arc::new(config)))
    }
}

/// A connection to a node: plain TCP, or TLS over it.
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(stream) => stream.read(buf),
            Stream::Tls(stream) => stream.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(stream) => stream.write(buf),
            Stream::Tls(stream) => stream.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Stream::Plain(stream) => stream.flush(),
            Stream::Tls(stream) => stream.flush(),
        }
    }
}

/// Errors after which a retry may succeed (the cluster is electing, moving or overloaded).
fn is_transient(message: &str) -> bool {
    ["no leader", "not the leader", "timeout", "leadership changed", "shutting down", "overloaded", "congested", "being transferred", "removed from the cluster", "outcome is unknown"]
        .iter()
        .any(|needle| message.contains(needle))
}

pub struct Client {
    endpoints: Vec<String>,
    current: usize,
    connection: Option<Stream>,
    tls: Option<Tls>,
    client_id: u64,
    seq: u64,
    /// How long one call keeps retrying before it gives up.
    pub deadline: Duration,
    /// How long one attempt waits for a reply.
    pub attempt_timeout: Duration,
    /// Sent as `AUTH` on every new connection (a node with `--password-file` or `--users-file`).
    credentials: Option<Credentials>,
}

/// A user and password for nodes that require authentication (user None: the default user).
#[derive(Clone, Debug)]
pub struct Credentials {
    pub user: Option<String>,
    pub password: String,
}

impl Credentials {
    /// Authenticates a fresh connection: Ok(None) if taken, Ok(Some(error)) with the node's refusal.
    pub fn authenticate(&self, connection: &mut Stream) -> std::io::Result<Option<String>> {
        let mut args: Vec<&[u8]> = vec![b"AUTH"];
        if let Some(user) = &self.user {
            args.push(user.as_bytes());
        }
        args.push(self.password.as_bytes());
        Ok(match exchange(connection, &args)? {
            Value::Error(message) => Some(message),
            _ => None,
        })
    }
}

impl Client {
    pub fn new(endpoints: Vec<String>) -> Result<Client, ClientError> {
        if endpoints.is_empty() {
            return Err(ClientError::NoEndpoints);
        }
        Ok(Client {
            endpoints,
            current: 0,
            connection: None,
            tls: None,
            client_id: random_client_id(),
            seq: 0,
            deadline: Duration::from_secs(30),
            attempt_timeout: Duration::from_secs(6),
            credentials: None,
        })
    }

    /// Authenticates every connection with these credentials.
    pub fn with_credentials(mut self, credentials: Option<Credentials>) -> Client {
        self.credentials = credentials;
        self
    }

    /// Speaks TLS to every node (None: plain TCP).
    pub fn with_tls(mut self, tls: Option<Tls>) -> Client {
        self.tls = tls;
        self
    }

    pub fn client_id(&self) -> u64 {
        self.client_id
    }

    pub fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, ClientError> {
        match self.call(&[b"GET", key])? {
            Value::Bulk(value) => Ok(value),
            other => Err(ClientError::UnexpectedReply(other)),
        }
    }

    pub fn set(&mut self, key: &[u8], value: &[u8]) -> Result<(), ClientError> {
        match self.tagged(&[b"SET", key, value])? {
            Value::Simple(_) => Ok(()),
            other => Err(ClientError::UnexpectedReply(other)),
        }
    }

    /// Appends and returns the value's new length.
    pub fn append(&mut self, key: &[u8], value: &[u8]) -> Result<u64, ClientError> {
        let args = self.tagged_args(&[b"APPEND", key, value]);
        self.integer(args)
    }

    /// Deletes the keys and returns how many existed.
    pub fn del(&mut self, keys: &[&[u8]]) -> Result<u64, ClientError> {
        let mut args: Vec<&[u8]> = vec![b"DEL"];
        args.extend_from_slice(keys);
        let args = self.tagged_args(&args);
        self.integer(args)
    }

    /// Any command (membership commands and the like), retried across the endpoints like the
    /// others while the answer says it was not taken (no leader, not the leader, ...).
    pub fn command(&mut self, args: &[&[u8]]) -> Result<Value, ClientError> {
        self.call(args)
    }

    /// The INFO text of one endpoint (no retries elsewhere: it is about that node).
    pub fn info(endpoint: &str, timeout: Duration) -> Result<String, ClientError> {
        Client::info_as(endpoint, timeout, None, None)
    }

    /// `info`, over TLS if given, authenticated with `credentials` first if given.
    pub fn info_as(endpoint: &str, timeout: Duration, credentials: Option<&Credentials>, tls: Option<&Tls>) -> Result<String, ClientError> {
        let mut connection = connect(endpoint, timeout, tls).map_err(|error| unavailable(1, Duration::ZERO, error))?;
        if let Some(credentials) = credentials {
            if let Some(refusal) = credentials.authenticate(&mut connection).map_err(|error| unavailable(1, Duration::ZERO, error))? {
                return Err(ClientError::Refused(refusal));
            }
        }
        match exchange(&mut connection, &[b"INFO"]).map_err(|error| unavailable(1, Duration::ZERO, error))? {
            Value::Bulk(Some(text)) => Ok(String::from_utf8_lossy(&text).into_owned()),
            other => Err(ClientError::UnexpectedReply(other)),
        }
    }

    fn integer(&mut self, args: Vec<Vec<u8>>) -> Result<u64, ClientError> {
        let refs: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
        match self.call(&refs)? {
            Value::Integer(n) if n >= 0 => Ok(n as u64),
            other => Err(ClientError::UnexpectedReply(other)),
        }
    }

    fn tagged(&mut self, args: &[&[u8]]) -> Result<Value, ClientError> {
        let args = self.tagged_args(args);
        let refs: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
        self.call(&refs)
    }

    /// A new sequence number per write; retries of that write reuse it.
    fn tagged_args(&mut self, args: &[&[u8]]) -> Vec<Vec<u8>> {
        self.seq += 1;
        let mut tagged = vec![b"TAGGED".to_vec(), self.client_id.to_string().into_bytes(), self.seq.to_string().into_bytes()];
        tagged.extend(args.iter().map(|arg| arg.to_vec()));
        tagged
    }

    /// Sends one command, retrying across endpoints until an answer or the deadline.
    fn call(&mut self, args: &[&[u8]]) -> Result<Value, ClientError> {
        let started = Instant::now();
        let mut attempts = 0;
        let mut pause = Duration::from_millis(20);
        loop {
            attempts += 1;
            let last = match self.attempt(args) {
                Ok(Value::Error(message)) if is_transient(&message) => message,
                Ok(Value::Error(message)) => return Err(ClientError::Refused(message)),
                Ok(value) => return Ok(value),
                Err(error) => error.to_string(),
            };
            self.connection = None;
            self.current = (self.current + 1) % self.endpoints.len();
            if started.elapsed() + pause > self.deadline {
                return Err(ClientError::Unavailable { attempts, elapsed: started.elapsed(), last });
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(500));
        }
    }

    fn attempt(&mut self, args: &[&[u8]]) -> std::io::Result<Value> {
        if self.connection.is_none() {
            let mut connection = connect(&self.endpoints[self.current], self.attempt_timeout, self.tls.as_ref())?;
            if let Some(credentials) = &self.credentials {
                if let Some(refusal) = credentials.authenticate(&mut connection)? {
                    // Not transient: the caller gets the node's refusal (WRONGPASS, ...).
                    return Ok(Value::Error(refusal));
                }
            }
            self.connection = Some(connection);
        }
        let connection = self.connection.as_mut().expect("connected above");
        exchange(connection, args)
    }
}

fn unavailable(attempts: u32, elapsed: Duration, error: std::io::Error) -> ClientError {
    ClientError::Unavailable { attempts, elapsed, last: error.to_string() }
}

/// Opens a TCP connection to `endpoint` (`host:port`) with `timeout` for the connect and for every
/// read and write, and Nagle off (requests are small and latency-bound); with `tls`, a TLS session
/// over it, the node's certificate checked against the host dialled.
pub fn connect(endpoint: &str, timeout: Duration, tls: Option<&Tls>) -> std::io::Result<Stream> {
    let invalid = |message: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, message);
    let address = endpoint.to_socket_addrs()?.next().ok_or_else(|| invalid(format!("{endpoint} resolves to nothing")))?;
    let stream = TcpStream::connect_timeout(&address, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    stream.set_nodelay(true)?;
    let Some(Tls(config)) = tls else { return Ok(Stream::Plain(stream)) };
    let host = endpoint.rsplit_once(':').map_or(endpoint, |(host, _)| host).trim_start_matches('[').trim_end_matches(']');
    let name = ServerName::try_from(host.to_string()).map_err(|error| invalid(format!("{host}: {error}")))?;
    let session = rustls::ClientConnection::new(config.clone(), name).map_err(|error| std::io::Error::other(error.to_string()))?;
    Ok(Stream::Tls(Box::new(rustls::StreamOwned::new(session, stream))))
}

/// Writes one command and reads exactly one reply.
fn exchange(stream: &mut Stream, args: &[&[u8]]) -> std::io::Result<Value> {
    let mut out = Vec::new();
    resp::encode_array_of_bulks(args, &mut out);
    stream.write_all(&out)?;
    let limits = resp::Limits::default();
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        match resp::parse(&buffer, &limits) {
            Ok(Some((value, _))) => return Ok(value),
            Ok(None) => {}
            Err(error) => return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, error.to_string())),
        }
        let read = stream.read(&mut chunk)?;
        if read == 0 {
            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "the server closed the connection"));
        }
        buffer.extend_from_slice(&chunk[..read]);
    }
}

/// A random, non-zero 64-bit id (0 means untagged), from std's randomly keyed hasher.
fn random_client_id() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_nanos()));
    hasher.finish().max(1)
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use super::*;

    /// A node answers each command it reads with the next of `replies`, and counts the commands.
    fn fake_node(replies: Vec<&'static [u8]>) -> (String, std::thread::JoinHandle<usize>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let address = listener.local_addr().expect("address").to_string();
        let node = std::thread::spawn(move || {
            let mut commands = 0;
            for reply in replies {
                // Every attempt may come on a new connection (the client drops a connection after an error).
                let (mut stream, _) = listener.accept().expect("accept");
                let mut buffer = [0u8; 4096];
                let _ = stream.read(&mut buffer).expect("a command");
                commands += 1;
                stream.write_all(reply).expect("reply");
            }
            commands
        });
        (address, node)
    }

    /// A follower whose link to the leader is full refuses a forward it could not send, and says
    /// to retry: the write did not happen, so the client tries again (before, it gave up and the
    /// write's outcome looked unknown — 172 such refusals in one process fault run made its
    /// history too hard to check).
    #[test]
    fn a_request_the_node_could_not_forward_is_retried() {
        let congested: &[u8] = b"-ERR the link to the leader is congested; the request was not sent, retry\r\n";
        let (address, node) = fake_node(vec![congested, b"+OK\r\n"]);
        let mut client = Client::new(vec![address]).expect("an endpoint");
        client.set(b"k", b"v").expect("set after a retry");
        assert_eq!(node.join().expect("the fake node"), 2);
    }
}
