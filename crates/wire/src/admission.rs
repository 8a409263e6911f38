//! Who may talk on an inbound peer connection, decided without the socket: the first frame must
//! be a Hello from a peer of this node's cluster (and, with TLS, from the node its certificate
//! names); every later frame is from that peer, and a Raft message in it must say so. A node this
//! one has not heard of is a peer too if its Hello names this node's cluster and says where it
//! takes connections: it joined while this node was away, and may now lead. The
//! transport runs one `Admission` per accepted connection; the simulator runs one per link
//! connection, so these rules hold in every seed.

use raft::{Message, NodeId};

use crate::{Frame, Wire};

/// The longest frame a connection may send before its Hello (a Hello takes a dozen bytes), so
/// that an unknown connection cannot make a node buffer a full-size frame.
pub const PRE_HELLO_MAX_FRAME_BYTES: usize = 1024;

/// Why a connection is refused (and closed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("first frame is not a Hello")]
    NotHello,
    #[error("Hello from {0}, which is not a peer")]
    UnknownPeer(NodeId),
    #[error("Hello from {0}, whose certificate does not name it (node-{n})", n = .0 .0)]
    CertificateMismatch(NodeId),
    #[error("a node of another cluster: Hello from {from} of cluster {theirs:#018x}, this node's cluster is {ours:#018x}")]
    ForeignCluster { from: NodeId, theirs: u64, ours: u64 },
    #[error("a second Hello")]
    SecondHello,
    #[error("Raft message {0} does not match the connection's peer {1} and this node {2}")]
    Misaddressed(Box<Message>, NodeId, NodeId),
}

impl Refusal {
    /// Whether the connection never identified itself properly (as opposed to a known peer that
    /// then sent something wrong).
    pub fn is_rejection(&self) -> bool {
        !matches!(self, Refusal::SecondHello | Refusal::Misaddressed(..))
    }
}

/// What an admitted frame was.
#[derive(Debug, PartialEq, Eq)]
pub enum Admitted {
    /// The connection is from this peer from now on; it takes connections at `address` (empty:
    /// it did not say); its cluster is `cluster` (0: not named yet); it speaks frame versions up
    /// to `speaks`.
    Hello { from: NodeId, address: String, cluster: u64, speaks: u8 },
    Frame(NodeId, Frame),
}

/// The state of one inbound connection.
#[derive(Debug)]
pub struct Admission {
    me: NodeId,
    from: Option<NodeId>,
}

impl Admission {
    pub fn new(me: NodeId) -> Admission {
        Admission { me, from: None }
    }

    /// The peer the connection's Hello named, once it has.
    pub fn peer(&self) -> Option<NodeId> {
        self.from
    }

    /// The largest frame to accept next: small until the Hello.
    pub fn frame_limit(&self, max_frame_bytes: usize) -> usize {
        if self.from.is_none() { PRE_HELLO_MAX_FRAME_BYTES.min(max_frame_bytes) } else { max_frame_bytes }
    }

    /// Checks the connection's next frame. `cluster` is this node's cluster id now (0: not known
    /// yet, when any is accepted); `is_peer` says which ids are members; `joining` that this node
    /// waits to be added to a cluster (it then takes any node of a named cluster, as it cannot
    /// know which node will add it); `certified` whether the connection's certificate names an
    /// id (always true without TLS).
    pub fn admit(
        &mut self,
        wire: Wire,
        cluster: u64,
        joining: bool,
        is_peer: impl Fn(NodeId) -> bool,
        certified: impl Fn(NodeId) -> bool,
    ) -> Result<Admitted, Refusal> {
        match (wire, self.from) {
            (Wire::Hello { from, cluster: theirs, address, speaks }, None) => {
                if !certified(from) {
                    return Err(Refusal::CertificateMismatch(from));
                }
                if theirs != 0 && cluster != 0 && theirs != cluster {
                    return Err(Refusal::ForeignCluster { from, theirs, ours: cluster });
                }
                let of_this_cluster = !address.is_empty() && theirs != 0 && (theirs == cluster || (cluster == 0 && joining));
                if from == self.me || !(is_peer(from) || of_this_cluster) {
                    return Err(Refusal::UnknownPeer(from));
                }
                self.from = Some(from);
                Ok(Admitted::Hello { from, address, cluster: theirs, speaks })
            }
            (Wire::Hello { .. }, Some(_)) => Err(Refusal::SecondHello),
            (Wire::Frame(_), None) => Err(Refusal::NotHello),
            (Wire::Frame(frame), Some(from)) => {
                // A mismatch means the --peers maps disagree (an address dials the wrong node):
                // refuse loudly rather than feed Raft messages it would misattribute.
                if let Frame::Raft(message) = &frame {
                    if message.from != from || message.to != self.me {
                        return Err(Refusal::Misaddressed(Box::new(message.clone()), from, self.me));
                    }
                }
                Ok(Admitted::Frame(from, frame))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft::{MessageBody, Term};

    const ME: NodeId = NodeId(1);

    fn peers(id: NodeId) -> bool {
        (2..=3).contains(&id.0)
    }

    fn hello(from: u64, cluster: u64) -> Wire {
        Wire::hello(NodeId(from), cluster, String::new())
    }

    fn hello_from(from: u64, cluster: u64, address: &str) -> Wire {
        Wire::hello(NodeId(from), cluster, address.into())
    }

    fn heartbeat(from: u64, to: u64) -> Wire {
        let body = MessageBody::SnapshotResponse { index: raft::LogIndex(0), received: 0 };
        Wire::Frame(Frame::Raft(Message { from: NodeId(from), to: NodeId(to), term: Term(1), body }))
    }

    #[test]
    fn a_peer_is_admitted_by_its_hello_and_then_only_speaks_for_itself() {
        let mut admission = Admission::new(ME);
        assert_eq!(admission.frame_limit(1 << 20), PRE_HELLO_MAX_FRAME_BYTES);
        assert_eq!(admission.admit(hello(2, 7), 7, false, peers, |_| true), Ok(Admitted::Hello { from: NodeId(2), address: String::new(), cluster: 7, speaks: crate::VERSION }));
        assert_eq!(admission.frame_limit(1 << 20), 1 << 20);
        assert!(matches!(admission.admit(heartbeat(2, 1), 7, false, peers, |_| true), Ok(Admitted::Frame(NodeId(2), _))));
        assert!(matches!(admission.admit(heartbeat(3, 1), 7, false, peers, |_| true), Err(Refusal::Misaddressed(..))));
        assert!(matches!(admission.admit(heartbeat(2, 3), 7, false, peers, |_| true), Err(Refusal::Misaddressed(..))));
        assert_eq!(admission.admit(hello(2, 7), 7, false, peers, |_| true), Err(Refusal::SecondHello));
    }

    #[test]
    fn strangers_are_refused_before_anything_they_send_is_read() {
        let refuse = |wire, cluster, certified: bool| Admission::new(ME).admit(wire, cluster, false, peers, |_| certified).unwrap_err();
        assert_eq!(refuse(heartbeat(2, 1), 0, true), Refusal::NotHello);
        assert_eq!(refuse(hello(4, 0), 0, true), Refusal::UnknownPeer(NodeId(4)));
        assert_eq!(refuse(hello(1, 0), 0, true), Refusal::UnknownPeer(ME));
        assert_eq!(refuse(hello(2, 8), 7, true), Refusal::ForeignCluster { from: NodeId(2), theirs: 8, ours: 7 });
        assert_eq!(refuse(hello(2, 7), 7, false), Refusal::CertificateMismatch(NodeId(2)));
        assert!([Refusal::NotHello, Refusal::UnknownPeer(ME)].iter().all(Refusal::is_rejection));
        assert!(!Refusal::SecondHello.is_rejection());
    }

    #[test]
    fn a_node_not_heard_of_yet_is_admitted_if_it_names_this_cluster_and_its_address() {
        let admit = |wire, cluster| Admission::new(ME).admit(wire, cluster, false, peers, |_| true);
        assert_eq!(admit(hello_from(4, 7, "10.0.0.4:7001"), 7), Ok(Admitted::Hello { from: NodeId(4), address: "10.0.0.4:7001".into(), cluster: 7, speaks: crate::VERSION }));
        // Not without an address to answer it at, a cluster id on both sides, or the same one.
        assert_eq!(admit(hello_from(4, 7, ""), 7), Err(Refusal::UnknownPeer(NodeId(4))));
        assert_eq!(admit(hello_from(4, 0, "10.0.0.4:7001"), 7), Err(Refusal::UnknownPeer(NodeId(4))));
        assert_eq!(admit(hello_from(4, 7, "10.0.0.4:7001"), 0), Err(Refusal::UnknownPeer(NodeId(4))));
        assert!(matches!(admit(hello_from(4, 8, "10.0.0.4:7001"), 7), Err(Refusal::ForeignCluster { .. })));
        assert_eq!(admit(hello_from(1, 7, "10.0.0.1:7001"), 7), Err(Refusal::UnknownPeer(ME)));
        // A node waiting to join knows no cluster yet: it takes any node of a named one.
        let joining = |wire| Admission::new(ME).admit(wire, 0, true, peers, |_| true);
        assert!(joining(hello_from(4, 7, "10.0.0.4:7001")).is_ok());
        assert_eq!(joining(hello_from(4, 0, "10.0.0.4:7001")), Err(Refusal::UnknownPeer(NodeId(4))));
    }

    #[test]
    fn an_unnamed_cluster_on_either_side_is_accepted() {
        assert!(Admission::new(ME).admit(hello(2, 0), 7, false, peers, |_| true).is_ok());
        assert!(Admission::new(ME).admit(hello(2, 7), 0, false, peers, |_| true).is_ok());
    }
}
