//! Replication at the store level: a slave store fed with a master's chunks holds the same
//! records at the same offsets (across segment rolls), serves the same queues, resumes after a
//! restart, and rejects misplaced or corrupt bytes without writing them.

use std::net::SocketAddr;
use std::path::Path;

use tern_store::config::{IoMode, StoreConfig};
use tern_store::message::MessageDraft;
use tern_store::message_store::{GetStatus, MessageStore, PutStatus, ReplicaError};
use tern_store::properties;

const SEGMENT: u64 = 16 * 1024;

fn config(dir: &Path, mode: IoMode) -> StoreConfig {
    let mut c = StoreConfig {
        store_path_root_dir: dir.to_path_buf(),
        ..StoreConfig::default()
    };
    c.mapped_file_size_commit_log = SEGMENT;
    c.mapped_file_size_consume_queue = 64 * 20;
    c.max_hash_slot_num = 256;
    c.max_index_num = 1024;
    c.commit_log_io_mode = mode;
    c
}

fn run<T>(f: impl std::future::Future<Output = T>) -> T {
    tern_runtime::block_on("replica-test", f).expect("executor")
}

async fn put_many(store: &MessageStore, from: usize, n: usize) {
    let host = SocketAddr::from(([127, 0, 0, 1], 10911));
    for i in from..from + n {
        let body: Vec<u8> = (0..(1 + (i * 389) % 1200)).map(|j| (i + j) as u8).collect();
        let mut props = Vec::new();
        let key = format!("k{i}");
        properties::encode(
            [(properties::TAGS, "T"), (properties::KEYS, key.as_str())],
            &mut props,
        );
        let draft = MessageDraft {
            topic: "Rep",
            queue_id: (i % 3) as i32,
            flag: 0,
            body: &body,
            properties: &props,
            sys_flag: 0,
            born_timestamp: 1_700_000_000_000,
            born_host: host,
            store_host: host,
            reconsume_times: 0,
            prepared_transaction_offset: 0,
        };
        assert_eq!(store.put(&draft).await.status, PutStatus::PutOk);
    }
}

/// Copies chunks of at most `chunk` bytes until the slave reaches the master's end.
async fn catch_up(master: &MessageStore, slave: &MessageStore, chunk: usize) -> usize {
    let mut rounds = 0;
    while slave.max_phys_offset() < master.max_phys_offset() {
        let from = slave.max_phys_offset();
        let bytes = master.read_for_replica(from, chunk).await.expect("read");
        assert!(!bytes.is_empty(), "no progress at {from}");
        let end = slave
            .append_replicated(from, &bytes, |_, _| {})
            .await
            .expect("append");
        assert!(end > from);
        rounds += 1;
    }
    rounds
}

async fn commit_log_bytes(store: &MessageStore) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for q in 0..3 {
        let r = store.get_messages("Rep", q, 0, 10_000, usize::MAX, |_| true);
        for m in r.messages {
            let mut b = vec![0u8; m.range.len()];
            m.range.copy_to(&mut b).expect("copy");
            out.push(b);
        }
    }
    out
}

fn replicate(mode: IoMode) {
    let m_dir = tempfile::tempdir().expect("tmp");
    let s_dir = tempfile::tempdir().expect("tmp");
    run(async {
        let master = MessageStore::open(&config(m_dir.path(), mode), 0)
            .await
            .expect("master");
        put_many(&master, 0, 60).await;
        let slave = MessageStore::open(&config(s_dir.path(), mode), 0)
            .await
            .expect("slave");
        let rounds = catch_up(&master, &slave, 3000).await;
        assert!(
            master.max_phys_offset() > 2 * SEGMENT,
            "test must roll segments"
        );
        assert!(rounds > 3);
        assert_eq!(slave.max_phys_offset(), master.max_phys_offset());
        for q in 0..3 {
            assert_eq!(slave.max_offset("Rep", q), master.max_offset("Rep", q));
        }
        assert_eq!(
            commit_log_bytes(&slave).await,
            commit_log_bytes(&master).await
        );
        assert_eq!(
            slave.query_by_key("Rep", "k17", 4, 0, i64::MAX).await.len(),
            1,
            "the Index is built from replicated records"
        );
        // Caught up: nothing to send.
        let end = master.max_phys_offset();
        assert!(master
            .read_for_replica(end, 1000)
            .await
            .expect("read")
            .is_empty());
        assert!(matches!(
            master.read_for_replica(end + 1, 1000).await,
            Err(ReplicaError::Ahead { .. })
        ));
        // More on the master, then the slave restarts and resumes where its CommitLog ends.
        put_many(&master, 60, 25).await;
        slave.shutdown().await.expect("slave shutdown");
        let slave = MessageStore::open(&config(s_dir.path(), mode), 0)
            .await
            .expect("slave reopen");
        assert_eq!(slave.max_phys_offset(), end);
        catch_up(&master, &slave, 100_000).await;
        assert_eq!(
            commit_log_bytes(&slave).await,
            commit_log_bytes(&master).await
        );
        let got = slave.get_messages("Rep", 1, 0, 1000, usize::MAX, |_| true);
        assert_eq!(got.status, GetStatus::Found);
        assert_eq!(got.messages.len() as i64, master.max_offset("Rep", 1));
        slave.shutdown().await.expect("slave shutdown");
        master.shutdown().await.expect("master shutdown");
    });
}

#[test]
fn slave_matches_master_mmap() {
    replicate(IoMode::Mmap);
}

#[test]
fn slave_matches_master_direct() {
    replicate(IoMode::Direct);
}

#[test]
fn bad_chunks_are_refused_without_writing() {
    let m_dir = tempfile::tempdir().expect("tmp");
    let s_dir = tempfile::tempdir().expect("tmp");
    run(async {
        let master = MessageStore::open(&config(m_dir.path(), IoMode::Mmap), 0)
            .await
            .expect("master");
        put_many(&master, 0, 5).await;
        let slave = MessageStore::open(&config(s_dir.path(), IoMode::Mmap), 0)
            .await
            .expect("slave");
        let chunk = master.read_for_replica(0, 100_000).await.expect("read");
        // Not at the slave's write position.
        let first_len = u32::from_be_bytes(chunk[0..4].try_into().expect("4 bytes")) as u64;
        let second = &chunk[first_len as usize..];
        assert!(matches!(
            slave.append_replicated(first_len, second, |_, _| {}).await,
            Err(ReplicaError::Misplaced { .. } | ReplicaError::Store(_))
        ));
        assert_eq!(slave.max_phys_offset(), 0);
        // A damaged second record: the first is applied, the second refused.
        let mut bad = chunk.clone();
        bad[first_len as usize + 4] ^= 0xff; // its MAGICCODE
        let err = slave.append_replicated(0, &bad, |_, _| {}).await;
        assert!(
            matches!(err, Err(ReplicaError::Corrupt { offset, .. }) if offset == first_len),
            "{err:?}"
        );
        assert_eq!(slave.max_phys_offset(), first_len);
        // Garbage is not a record.
        assert!(matches!(
            slave
                .append_replicated(first_len, &[7u8; 64], |_, _| {})
                .await,
            Err(ReplicaError::Corrupt { .. })
        ));
        // The rest of the good chunk applies.
        assert_eq!(
            slave
                .append_replicated(first_len, second, |_, _| {})
                .await
                .expect("append"),
            master.max_phys_offset()
        );
        slave.shutdown().await.expect("shutdown");
        master.shutdown().await.expect("shutdown");
    });
}
