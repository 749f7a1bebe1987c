//! What a session sends to a socket, whoever implements the socket: frames
//! to write and a close. Realtime knows sockets only by these messages.

use std::sync::Arc;

use actix::{Actor, Addr, Handler, Message, Recipient};

/// One frame of a [`Push`].
pub struct PushFrame {
    pub frame: Arc<str>,
    pub conversation_id: Option<i64>,
    pub seq: Option<i64>,
}

/// Frames for this socket from its session, in order (counted against the
/// slow-client bound). Written in one go, they leave in one socket write.
pub struct Push {
    pub frames: Vec<PushFrame>,
}

impl Message for Push {
    type Result = ();
}

/// Close with a code (1008 ban/logout/too slow, 1000 idle).
pub struct Kick {
    pub code: u16,
    pub reason: &'static str,
}

impl Message for Kick {
    type Result = ();
}

/// A socket as sessions hold it.
#[derive(Clone)]
pub struct SocketAddr {
    pub push: Recipient<Push>,
    pub kick: Recipient<Kick>,
}

impl SocketAddr {
    pub fn of<A>(addr: &Addr<A>) -> Self
    where
        A: Actor + Handler<Push> + Handler<Kick>,
        A::Context: actix::dev::ToEnvelope<A, Push> + actix::dev::ToEnvelope<A, Kick>,
    {
        SocketAddr {
            push: addr.clone().recipient(),
            kick: addr.clone().recipient(),
        }
    }
}
