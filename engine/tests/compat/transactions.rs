//! The client's `TransactionMQProducer` against `tern-broker` (2 cores): a committed and a
//! rolled-back transaction, and one left UNKNOWN that the broker checks back and the client's
//! check listener commits. A lite pull consumer then sees exactly the two committed messages.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use rocketmq_client_rust::{LocalTransactionState, TransactionListener, TransactionMQProducer};
use rocketmq_model::common::message::MessageTrait;

use super::*;

/// Decides by body: `commit`, `rollback`, anything else UNKNOWN; every check commits.
struct ByBody {
    checks: Arc<AtomicUsize>,
}

impl TransactionListener for ByBody {
    fn execute_local_transaction(
        &self,
        msg: &dyn MessageTrait,
        _arg: Option<&(dyn std::any::Any + Send + Sync)>,
    ) -> LocalTransactionState {
        match msg.get_body().map(|b| b.as_ref()) {
            Some(b"txn-commit") => LocalTransactionState::CommitMessage,
            Some(b"txn-rollback") => LocalTransactionState::RollbackMessage,
            _ => LocalTransactionState::Unknown,
        }
    }

    fn check_local_transaction(&self, _msg: &MessageExt) -> LocalTransactionState {
        self.checks.fetch_add(1, Ordering::SeqCst);
        LocalTransactionState::CommitMessage
    }
}

#[test]
fn transactional_producer_commits_rolls_back_and_answers_checks() {
    let client = ClientHarness::new("txn", SerializeType::JSON);
    let cluster = Cluster::start_with(
        2,
        "transactionCheckInterval=200\ntransactionTimeOut=300\n",
        &client,
    );
    let topic = "TernTxn";
    let checks = Arc::new(AtomicUsize::new(0));
    let listener = ByBody {
        checks: Arc::clone(&checks),
    };
    client.block_on(async {
        let mut producer = TransactionMQProducer::builder(client.runtime())
            .producer_group("TernTxn_PG")
            .name_server_addr(cluster.namesrv.addr_string())
            .transaction_listener(listener)
            .build();
        within("transaction producer start", producer.start())
            .await
            .expect("producer starts");
        for body in ["txn-commit", "txn-rollback", "txn-unknown"] {
            let msg = Message::builder()
                .topic(topic)
                .tags("TagT")
                .body_slice(body.as_bytes())
                .build_unchecked();
            let sent = within(
                "send in transaction",
                producer.send_message_in_transaction::<(), _>(msg, None),
            )
            .await
            .unwrap_or_else(|e| panic!("{body}: {e:?}"));
            let status = sent.send_result.as_ref().map(|r| r.send_status);
            assert_eq!(status, Some(SendStatus::SendOk), "{body}: {sent}");
        }
        let expected: HashSet<String> = ["txn-commit", "txn-unknown"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        pull_exactly(&client, &cluster.namesrv, "TernTxn_CG", topic, &expected).await;
        producer.shutdown().await;
    });
    assert!(checks.load(Ordering::SeqCst) >= 1, "never checked back");
}
