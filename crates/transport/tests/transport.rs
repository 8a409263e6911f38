//! Transports talking over real sockets on 127.0.0.1. Every wait is bounded by `WAIT`; the tests
//! run on tokio's single-threaded test runtime, where a `send` that blocked would hang the test.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use raft::{LogIndex, Message, MessageBody, NodeId, Term};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::{sleep, timeout};
use transport::frame::{self, Wire};
use transport::{Config, Frame, Inbound, Transport, TransportError};

const WAIT: Duration = Duration::from_secs(10);

fn vote(from: u64, to: u64, term: u64) -> Frame {
    Frame::Raft(Message {
        from: NodeId(from),
        to: NodeId(to),
        term: Term(term),
        body: MessageBody::VoteRequest { pre_vote: false, transfer: false, last_log_index: LogIndex(0), last_log_term: Term(0) },
    })
}

fn term_of(frame: &Frame) -> u64 {
    match frame {
        Frame::Raft(message) => message.term.0,
        other => panic!("expected a Raft frame, got {other:?}"),
    }
}

struct Node {
    transport: Transport,
    inbound: mpsc::Receiver<Inbound>,
}

/// A frame as received (the Hellos that open connections are passed over).
#[derive(Debug, PartialEq, Eq)]
struct Received {
    from: NodeId,
    frame: Frame,
}

impl Node {
    async fn recv(&mut self) -> Received {
        loop {
            match timeout(WAIT, self.inbound.recv()).await.expect("timed out waiting for a frame").expect("inbound closed") {
                Inbound::Hello { .. } => continue,
                Inbound::Frame { from, frame } => return Received { from, frame },
            }
        }
    }
}

async fn bind() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").await.unwrap()
}

/// An address nothing listens on (bound once to pick a free port, then released).
async fn dead_addr() -> SocketAddr {
    bind().await.local_addr().unwrap()
}

fn peer_map(addrs: &[SocketAddr]) -> BTreeMap<NodeId, String> {
    (1..).map(NodeId).zip(addrs.iter().map(ToString::to_string)).collect()
}

async fn start(config: Config, listener: Option<TcpListener>) -> Node {
    let (sender, inbound) = mpsc::channel(1024);
    let transport = match listener {
        Some(listener) => Transport::start_with_listener(config, listener, sender).await,
        None => Transport::start(config, sender).await,
    };
    Node { transport: transport.unwrap(), inbound }
}

/// Nodes 1..=n, each a peer of all the others; `tweak` adjusts each config.
async fn cluster(n: usize, tweak: impl Fn(&mut Config)) -> Vec<Node> {
    let mut listeners = Vec::new();
    for _ in 0..n {
        listeners.push(bind().await);
    }
    let addrs: Vec<SocketAddr> = listeners.iter().map(|listener| listener.local_addr().unwrap()).collect();
    let mut nodes = Vec::new();
    for (i, listener) in listeners.into_iter().enumerate() {
        let mut config = Config::new(NodeId(i as u64 + 1), addrs[i].to_string(), peer_map(&addrs));
        tweak(&mut config);
        nodes.push(start(config, Some(listener)).await);
    }
    nodes
}

/// Sends `frame()` from `from` to `to` every 20 ms until `to` receives one (earlier ones may be
/// lost while the link comes up), and returns it.
async fn send_until_received(from: &Transport, to: &mut Node, frame: impl Fn() -> Frame) -> Received {
    let target = to.transport.me();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let _ = from.send(target, frame());
        let wait = deadline.min(tokio::time::Instant::now() + Duration::from_millis(20));
        // A Hello is not the frame: wait on, without sending again.
        loop {
            match tokio::time::timeout_at(wait, to.inbound.recv()).await {
                Ok(Some(Inbound::Frame { from, frame })) => return Received { from, frame },
                Ok(Some(Inbound::Hello { .. })) => continue,
                Ok(None) => panic!("inbound closed"),
                Err(_) => break,
            }
        }
        assert!(tokio::time::Instant::now() < deadline, "{target} never received a frame");
    }
}

/// Waits until `condition` holds, polling every 10 ms.
async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    timeout(WAIT, async {
        while !condition() {
            sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("timed out waiting until {what}"));
}

/// True once the other end has closed the connection (EOF or reset).
async fn closed_by_peer(stream: &mut TcpStream) -> bool {
    let mut buffer = [0u8; 64];
    loop {
        match timeout(WAIT, stream.read(&mut buffer)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
        }
    }
}

fn encode(wire: Wire) -> Vec<u8> {
    let mut bytes = Vec::new();
    frame::encode(&wire, transport::DEFAULT_MAX_FRAME_BYTES, &mut bytes).unwrap();
    bytes
}

#[tokio::test]
async fn three_nodes_exchange_every_kind_both_ways() {
    let mut nodes = cluster(3, |_| {}).await;
    for i in 1..=3u64 {
        for j in (1..=3u64).filter(|&j| j != i) {
            let sender = &nodes[i as usize - 1].transport;
            let _ = sender.send(NodeId(j), vote(i, j, 10 * i + j));
            let _ = sender.send(NodeId(j), Frame::Forward { request_id: i, payload: vec![i as u8; 3].into() });
            let _ = sender.send(NodeId(j), Frame::ForwardReply { request_id: j, payload: bytes::Bytes::from_static(b"+OK\r\n") });
        }
    }
    for (index, node) in nodes.iter_mut().enumerate() {
        let me = index as u64 + 1;
        let mut per_peer: BTreeMap<u64, Vec<Frame>> = BTreeMap::new();
        for _ in 0..6 {
            let Received { from, frame } = node.recv().await;
            per_peer.entry(from.0).or_default().push(frame);
        }
        let expected: BTreeMap<u64, Vec<Frame>> = (1..=3u64)
            .filter(|&peer| peer != me)
            .map(|peer| {
                let frames = vec![
                    vote(peer, me, 10 * peer + me),
                    Frame::Forward { request_id: peer, payload: vec![peer as u8; 3].into() },
                    Frame::ForwardReply { request_id: me, payload: bytes::Bytes::from_static(b"+OK\r\n") },
                ];
                (peer, frames)
            })
            .collect();
        // One connection per direction: each peer's frames arrive in the order it sent them.
        assert_eq!(per_peer, expected, "node {me}");
    }
    for node in &nodes {
        let stats = node.transport.stats();
        assert_eq!(stats.peers.len(), 2);
        for peer in stats.peers.values() {
            assert_eq!((peer.connects, peer.frames_sent, peer.frames_received), (1, 3, 3), "{stats:?}");
            assert_eq!(peer.frames_dropped(), 0);
        }
    }
}

#[tokio::test]
async fn a_peer_down_at_start_is_reached_once_it_comes_up() {
    let a_listener = bind().await;
    let addrs = [a_listener.local_addr().unwrap(), dead_addr().await];
    let a = start(Config::new(NodeId(1), addrs[0].to_string(), peer_map(&addrs)), Some(a_listener)).await;
    let _ = a.transport.send(NodeId(2), vote(1, 2, 1));
    eventually("a few connection attempts failed", || a.transport.stats().peers[&NodeId(2)].connect_failures >= 2).await;

    let mut b = start(Config::new(NodeId(2), addrs[1].to_string(), peer_map(&addrs)), None).await;
    let received = send_until_received(&a.transport, &mut b, || vote(1, 2, 2)).await;
    assert_eq!(received.from, NodeId(1));
    assert_eq!(term_of(&received.frame), 2, "the frame queued while B was down was discarded, not delivered late");
    assert!(a.transport.stats().peers[&NodeId(2)].connects >= 1);
}

#[tokio::test]
async fn a_restarted_peer_is_reconnected() {
    let mut nodes = cluster(2, |_| {}).await;
    let b_addr = nodes[1].transport.local_addr();
    let _ = nodes[0].transport.send(NodeId(2), vote(1, 2, 1));
    assert_eq!(term_of(&nodes[1].recv().await.frame), 1);

    let old_b = nodes.pop().unwrap();
    old_b.transport.shutdown().await;
    drop(old_b);
    let a = &nodes[0];
    eventually("A noticed B's connection close", || a.transport.stats().peers[&NodeId(2)].disconnects >= 1).await;

    let config = Config::new(NodeId(2), b_addr.to_string(), peer_map(&[a.transport.local_addr(), b_addr]));
    let mut new_b = start(config, None).await;
    let received = send_until_received(&a.transport, &mut new_b, || vote(1, 2, 2)).await;
    assert_eq!((received.from, term_of(&received.frame)), (NodeId(1), 2));
    // And the other way, on the new B's own outbound connection.
    let _ = new_b.transport.send(NodeId(1), vote(2, 1, 3));
    let a = &mut nodes[0];
    loop {
        let received = a.recv().await;
        assert_eq!(received.from, NodeId(2));
        if term_of(&received.frame) == 3 {
            break;
        }
    }
}

#[tokio::test]
async fn bad_connections_are_closed_and_real_peers_carry_on() {
    // Peer 3 is in node 1's config but never runs: its id is only used by the raw sockets below,
    // so they don't displace node 2's real connection.
    let listeners = [bind().await, bind().await];
    let addrs = [listeners[0].local_addr().unwrap(), listeners[1].local_addr().unwrap(), dead_addr().await];
    let mut nodes = Vec::new();
    for (i, listener) in listeners.into_iter().enumerate() {
        let mut config = Config::new(NodeId(i as u64 + 1), addrs[i].to_string(), peer_map(&addrs));
        config.max_frame_bytes = 4096;
        nodes.push(start(config, Some(listener)).await);
    }
    let target = nodes[0].transport.local_addr();
    let hello_3 = encode(Wire::hello(NodeId(3), 0, String::new()));
    let mut oversized = hello_3.clone();
    oversized.extend_from_slice(&4097u32.to_le_bytes());
    let mut truncated = hello_3.clone();
    truncated.extend_from_slice(&encode(Wire::Frame(vote(3, 1, 1)))[..7]);
    let mut misaddressed = hello_3.clone();
    misaddressed.extend_from_slice(&encode(Wire::Frame(vote(2, 1, 1))));
    let mut bad_version = hello_3.clone();
    bad_version.extend_from_slice(&[2, 0, 0, 0, 9, 2]);
    let cases: Vec<(&str, Vec<u8>, bool)> = vec![
        ("an HTTP request", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), false),
        ("random bytes", (0..200u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect(), false),
        ("a Raft frame before any Hello", encode(Wire::Frame(vote(3, 1, 1))), false),
        ("a Hello from a stranger", encode(Wire::hello(NodeId(9), 0, String::new())), false),
        ("a Hello from the node itself", encode(Wire::hello(NodeId(1), 0, String::new())), false),
        ("an oversized frame", oversized, false),
        // Within the frame limit, but no Hello is that long: refused before its body is awaited.
        ("a long frame announced before any Hello", 4000u32.to_le_bytes().to_vec(), false),
        ("a bad version", bad_version, false),
        ("a message claiming another sender", misaddressed, false),
        ("a frame cut off by EOF", truncated, true),
    ];
    for (what, bytes, then_eof) in cases {
        let mut stream = TcpStream::connect(target).await.unwrap();
        stream.write_all(&bytes).await.unwrap();
        if then_eof {
            stream.shutdown().await.unwrap();
        }
        assert!(closed_by_peer(&mut stream).await, "{what}: connection left open");
    }
    // A wrong first frame is a rejection; a bad frame or a cut-off one is an error.
    let node_1 = &nodes[0].transport;
    eventually("every closed connection was counted", || {
        let stats = node_1.stats();
        (stats.inbound_rejected, stats.inbound_errors) == (3, 7)
    })
    .await;

    // Node 1 still hears node 2, and node 2 still hears node 1.
    let _ = nodes[1].transport.send(NodeId(1), vote(2, 1, 5));
    assert_eq!(nodes[0].recv().await, Received { from: NodeId(2), frame: vote(2, 1, 5) });
    let _ = nodes[0].transport.send(NodeId(2), vote(1, 2, 6));
    assert_eq!(nodes[1].recv().await, Received { from: NodeId(1), frame: vote(1, 2, 6) });
}

#[tokio::test]
async fn a_frame_over_the_limit_is_dropped_by_the_sender() {
    let mut nodes = cluster(2, |config| config.max_frame_bytes = 4096).await;
    let _ = nodes[0].transport.send(NodeId(2), Frame::Forward { request_id: 1, payload: vec![0; 5000].into() });
    let _ = nodes[0].transport.send(NodeId(2), Frame::Forward { request_id: 2, payload: vec![0; 4000].into() });
    let received = nodes[1].recv().await;
    assert!(matches!(received.frame, Frame::Forward { request_id: 2, .. }), "{received:?}");
    assert_eq!(nodes[0].transport.stats().peers[&NodeId(2)].dropped_oversize, 1);
    // The connection survived the drop: no reconnect happened.
    assert_eq!(nodes[0].transport.stats().peers[&NodeId(2)].connects, 1);
}

#[tokio::test]
async fn stuck_peers_never_block_send_to_others() {
    // Peer 3 never accepts (the kernel completes the handshake, nobody reads); peer 4 accepts and
    // never reads. Both soon stop taking bytes.
    let never_accepts = bind().await;
    let never_reads = bind().await;
    let (hold, mut held) = mpsc::unbounded_channel();
    let never_reads_addr = never_reads.local_addr().unwrap();
    let acceptor = tokio::spawn(async move {
        while let Ok((stream, _)) = never_reads.accept().await {
            let _ = hold.send(stream);
        }
    });
    let listeners = [bind().await, bind().await];
    let addrs = [
        listeners[0].local_addr().unwrap(),
        listeners[1].local_addr().unwrap(),
        never_accepts.local_addr().unwrap(),
        never_reads_addr,
    ];
    let mut nodes = Vec::new();
    for (i, listener) in listeners.into_iter().enumerate() {
        let mut config = Config::new(NodeId(i as u64 + 1), addrs[i].to_string(), peer_map(&addrs));
        config.queue_frames = 16;
        nodes.push(start(config, Some(listener)).await);
    }

    let a = nodes[0].transport.clone();
    // Node 1's connection to node 2 is up before the flood starts.
    let warm_up = send_until_received(&a, &mut nodes[1], || vote(1, 2, 1000)).await;
    assert_eq!(term_of(&warm_up.frame), 1000);
    let big = || Frame::Forward { request_id: 0, payload: vec![7; 256 * 1024].into() };
    let mut slowest = Duration::ZERO;
    for round in 0..300u64 {
        for peer in [3, 4] {
            let frame = big();
            let started = Instant::now();
            let _ = a.send(NodeId(peer), frame);
            slowest = slowest.max(started.elapsed());
        }
        let _ = a.send(NodeId(2), vote(1, 2, round));
        // Let the outbound tasks run, so the stuck sockets fill up.
        tokio::task::yield_now().await;
    }
    assert!(slowest < Duration::from_millis(50), "a send took {slowest:?}");
    for round in 0..300u64 {
        let received = nodes[1].recv().await;
        assert_eq!((received.from, term_of(&received.frame)), (NodeId(1), round));
    }
    let stats = a.stats();
    for peer in [3, 4] {
        // 75 MiB each is far more than the socket buffers hold.
        assert!(stats.peers[&NodeId(peer)].frames_dropped() > 0, "peer {peer}: {:?}", stats.peers[&NodeId(peer)]);
    }
    assert_eq!(stats.peers[&NodeId(2)].frames_dropped(), 0);
    assert!(held.try_recv().is_ok(), "peer 4 accepted a connection");
    acceptor.abort();
}

#[tokio::test]
async fn a_full_queue_gives_the_frame_back() {
    let listener = bind().await;
    let addrs = [listener.local_addr().unwrap(), dead_addr().await];
    let mut config = Config::new(NodeId(1), addrs[0].to_string(), peer_map(&addrs));
    config.queue_frames = 4;
    let node = start(config, Some(listener)).await;
    // The outbound task can't run during this loop (single-threaded runtime): exactly 4 fit.
    for term in 0..100 {
        let sent = node.transport.send(NodeId(2), vote(1, 2, term));
        match sent {
            Ok(()) => assert!(term < 4, "frame {term} was queued"),
            Err(transport::Full(frame)) => assert_eq!(frame, vote(1, 2, term), "the refused frame comes back"),
        }
    }
    let peer = node.transport.stats().peers[&NodeId(2)].clone();
    assert_eq!((peer.dropped_full, peer.queued), (96, 4));
    // The peer is down: the 4 queued frames are discarded rather than kept for it.
    eventually("the queue was emptied", || {
        let peer = node.transport.stats().peers[&NodeId(2)].clone();
        peer.queued == 0 && peer.frames_dropped() == 100
    })
    .await;
    // Sending to itself or a stranger is dropped too, and counted.
    let _ = node.transport.send(NodeId(1), vote(1, 1, 0));
    let _ = node.transport.send(NodeId(7), vote(1, 7, 0));
    assert_eq!(node.transport.stats().unknown_destination, 2);
}

#[tokio::test]
async fn dropping_the_transport_stops_its_tasks() {
    let mut nodes = cluster(2, |_| {}).await;
    let _ = nodes[0].transport.send(NodeId(2), vote(1, 2, 1));
    nodes[1].recv().await;
    let mut node = nodes.remove(0);
    let addr = node.transport.local_addr();
    let clone = node.transport.clone();
    let Node { transport, inbound } = node;
    drop(transport);
    // A clone keeps it running.
    let _ = nodes[0].transport.send(NodeId(1), vote(2, 1, 2));
    node = Node { transport: clone.clone(), inbound };
    assert_eq!(node.recv().await.from, NodeId(2));
    let Node { transport, mut inbound } = node;
    drop(transport);
    drop(clone);
    // The accept task held the only sender of `inbound`: it ends once every task has.
    assert_eq!(timeout(WAIT, inbound.recv()).await.expect("tasks still running"), None);
    assert!(TcpStream::connect(addr).await.is_err(), "listener still open");
}

#[tokio::test]
async fn shutdown_stops_everything_and_later_sends_are_dropped() {
    let mut nodes = cluster(2, |_| {}).await;
    let _ = nodes[0].transport.send(NodeId(2), vote(1, 2, 1));
    nodes[1].recv().await;
    let node = &mut nodes[0];
    node.transport.shutdown().await;
    // Only Hellos may be left over: no frame, and then the channel is closed.
    while let Some(left) = node.inbound.recv().await {
        assert!(matches!(left, Inbound::Hello { .. }), "tasks finished before shutdown returned: {left:?}");
    }
    assert!(TcpStream::connect(node.transport.local_addr()).await.is_err());
    let _ = node.transport.send(NodeId(2), vote(1, 2, 2));
    let peer = node.transport.stats().peers[&NodeId(2)].clone();
    assert_eq!((peer.connected, peer.dropped_unsent), (false, 1));
    // The same port can be bound again at once.
    let again = start(Config::new(NodeId(1), node.transport.local_addr().to_string(), BTreeMap::new()), None).await;
    assert_eq!(again.transport.local_addr(), node.transport.local_addr());
}

#[tokio::test]
async fn start_reports_bad_configs_and_busy_ports() {
    let busy = bind().await;
    let (sender, _inbound) = mpsc::channel(1);
    let config = Config::new(NodeId(1), busy.local_addr().unwrap().to_string(), BTreeMap::new());
    let error = Transport::start(config.clone(), sender.clone()).await.unwrap_err();
    assert!(matches!(error, TransportError::Bind { .. }), "{error}");

    let zero_queue = Config { queue_frames: 0, listen: "127.0.0.1:0".into(), ..config.clone() };
    let error = Transport::start(zero_queue, sender.clone()).await.unwrap_err();
    assert!(matches!(error, TransportError::Config(_)), "{error}");

    let ok = Transport::start(Config { listen: "127.0.0.1:0".into(), ..config }, sender).await.unwrap();
    assert_ne!(ok.local_addr().port(), 0);
}

/// A node of another cluster (its Hello names another cluster id) is refused before any of its
/// frames is read, and counted; a Hello naming this cluster, or none yet (0), is taken.
#[tokio::test]
async fn a_node_of_another_cluster_is_refused_at_its_hello() {
    let mut nodes = cluster(2, |_| {}).await;
    nodes[0].transport.set_cluster_id(5);
    let target = nodes[0].transport.local_addr();
    let mut foreign = encode(Wire::hello(NodeId(2), 6, String::new()));
    foreign.extend_from_slice(&encode(Wire::Frame(vote(2, 1, 99))));
    let mut stream = TcpStream::connect(target).await.unwrap();
    stream.write_all(&foreign).await.unwrap();
    assert!(closed_by_peer(&mut stream).await, "a Hello of another cluster left open");
    eventually("the refusal was counted", || nodes[0].transport.stats().inbound_rejected == 1).await;
    // Its frame never arrived; the real node 2 (cluster not known yet: 0) still gets through, and
    // once it knows the cluster (5), so does it.
    let (first, second) = nodes.split_at_mut(1);
    let received = send_until_received(&second[0].transport, &mut first[0], || vote(2, 1, 3)).await;
    assert_eq!(received, Received { from: NodeId(2), frame: vote(2, 1, 3) });
    let mut same = encode(Wire::hello(NodeId(2), 5, String::new()));
    same.extend_from_slice(&encode(Wire::Frame(vote(2, 1, 4))));
    let mut stream = TcpStream::connect(target).await.unwrap();
    stream.write_all(&same).await.unwrap();
    loop {
        let received = nodes[0].recv().await;
        if received.frame == vote(2, 1, 4) {
            break;
        }
    }
    assert_eq!(nodes[0].transport.stats().inbound_rejected, 1);
}

/// A node sends a peer frames in the highest version both speak, as the peer's Hello said: one
/// that says it speaks a later version than this build gets this build's highest; one that says
/// nothing (a build before negotiation) gets version 4. Its own Hello says what it speaks.
#[tokio::test]
async fn frames_go_to_a_peer_in_the_version_its_hello_allows() {
    for (hello_speaks, expected) in [(Some(200u8), frame::VERSION), (None, 4)] {
        let raw_peer = bind().await;
        let node = start(Config::new(NodeId(1), "127.0.0.1:0", peer_map(&[dead_addr().await, raw_peer.local_addr().unwrap()])), None).await;
        // The raw peer (node 2) dials the node and says what it speaks.
        let mut hello = match hello_speaks {
            Some(speaks) => encode(Wire::Hello { from: NodeId(2), cluster: 0, address: String::new(), speaks }),
            None => vec![3, 0, 0, 0, 4, 1, 2],
        };
        hello.extend_from_slice(&encode(Wire::Frame(vote(2, 1, 1))));
        let mut dialed = TcpStream::connect(node.transport.local_addr()).await.unwrap();
        dialed.write_all(&hello).await.unwrap();
        eventually("the raw peer's Hello was taken", || node.transport.stats().peers[&NodeId(2)].inbound_connections == 1).await;
        assert_eq!(node.transport.stats().peers[&NodeId(2)].frame_version, expected);

        // The node dials the raw peer: its Hello, then the frame in the agreed version.
        let _ = node.transport.send(NodeId(2), vote(1, 2, 7));
        let (mut accepted, _) = timeout(WAIT, raw_peer.accept()).await.expect("the node dials").unwrap();
        let mut bytes = Vec::new();
        let mut wires = Vec::new();
        while wires.len() < 2 {
            let mut chunk = [0u8; 256];
            let read = timeout(WAIT, accepted.read(&mut chunk)).await.expect("frames come").unwrap();
            assert!(read > 0, "the node closed the connection");
            bytes.extend_from_slice(&chunk[..read]);
            while let Some((wire, used)) = frame::decode(&bytes, transport::DEFAULT_MAX_FRAME_BYTES).unwrap() {
                wires.push((bytes[frame::LENGTH_BYTES], wire));
                bytes.drain(..used);
            }
        }
        assert!(matches!(wires[0], (frame::LOWEST_VERSION, Wire::Hello { from: NodeId(1), speaks: frame::VERSION, .. })), "{:?}", wires[0]);
        assert_eq!(wires[1], (expected, Wire::Frame(vote(1, 2, 7))));
        node.transport.shutdown().await;
    }
}
