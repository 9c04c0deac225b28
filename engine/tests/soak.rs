//! Behaviour that only shows once a real process has run for a while.
//!
//! An idle 2-core broker once died about 35 s after start: its cross-core receivers re-polled
//! glommio's channel on a 2 ms timer, each pending poll left a waker behind, and at 32,767 wakers
//! glommio's per-task count overflowed and its timer processing panicked; from then on no
//! request that had to cross cores (a send to another core's queue, a heartbeat for the state
//! core) was answered. Every test here passed, because none ran that long.

mod support;

use std::io::Write;
use std::time::Duration;

use tern_net::code::response;
use tern_net::header::PullMessageResponseHeader;
use tern_store::message::StoredMessage;

use support::{connect, namesrv, pull, read_frame, send, split_records, BrokerArgs, Server};

/// How long the broker sits idle: twice what the waker overflow took.
const IDLE: Duration = Duration::from_secs(75);
const QUEUES: i32 = 4;

/// Sends one message to each queue (with 2 cores, half of them are owned by the core that did
/// not accept the connection, so those sends cross the mesh) and checks each is acknowledged.
fn send_round(broker: &Server, round: usize) {
    let mut s = connect(broker.addr);
    for q in 0..QUEUES {
        s.write_all(&send("Soak", q, format!("round{round}-q{q}").as_bytes()))
            .unwrap();
        let rsp = read_frame(&mut s).expect("an answer to the send");
        assert_eq!(
            rsp.code,
            response::SUCCESS,
            "round {round} q{q}: {:?}",
            rsp.remark
        );
    }
}

#[test]
fn an_idle_broker_still_answers_cross_core_requests_after_a_while() {
    let dir = tempfile::tempdir().unwrap();
    let mut ns = namesrv();
    let mut broker = BrokerArgs::new(&ns.loopback(), &dir.path().join("store"))
        .cores(2)
        .set("defaultTopicQueueNums=4")
        .start();
    send_round(&broker, 0);
    std::thread::sleep(IDLE);
    broker.assert_healthy();
    send_round(&broker, 1);
    // Both rounds are stored, in order, on every queue.
    let mut s = connect(broker.addr);
    for q in 0..QUEUES {
        s.write_all(&pull("Soak", q, 0)).unwrap();
        let rsp = read_frame(&mut s).expect("an answer to the pull");
        assert_eq!(rsp.code, response::SUCCESS, "q{q}: {:?}", rsp.remark);
        let h: PullMessageResponseHeader = rsp.decode_header().unwrap();
        assert_eq!(h.next_begin_offset, 2, "q{q}");
        let bodies: Vec<Vec<u8>> = split_records(&rsp.body)
            .iter()
            .map(|r| StoredMessage::decode(r).unwrap().body.to_vec())
            .collect();
        assert_eq!(
            bodies,
            [
                format!("round0-q{q}").into_bytes(),
                format!("round1-q{q}").into_bytes()
            ]
        );
    }
    broker.assert_healthy();
    ns.assert_healthy();
}
