//! Clustering's queue allocation, RocketMQ's `AllocateMessageQueueAveragely`: queues and client
//! ids are sorted; with `q` queues and `c` clients, the first `q % c` clients take `q / c + 1`
//! consecutive queues and the rest `q / c` (each client at least one queue while queues remain;
//! clients beyond the queues get none).

use super::route::MessageQueue;

/// The queues of `all_queues` that client `me` consumes among `all_clients`. Empty when `me` is
/// not among the clients (it has not registered yet) or there are no queues.
pub fn allocate_averagely(
    me: &str,
    all_queues: &[MessageQueue],
    all_clients: &[String],
) -> Vec<MessageQueue> {
    let mut queues = all_queues.to_vec();
    queues.sort();
    let mut clients: Vec<&str> = all_clients.iter().map(String::as_str).collect();
    clients.sort_unstable();
    clients.dedup();
    let Some(index) = clients.iter().position(|c| *c == me) else {
        return Vec::new();
    };
    let (q, c) = (queues.len(), clients.len());
    if q == 0 {
        return Vec::new();
    }
    let rem = q % c;
    let size = if q <= c {
        1
    } else if index < rem {
        q / c + 1
    } else {
        q / c
    };
    let start = if index < rem {
        index * size
    } else {
        index * size + rem
    };
    let take = size.min(q.saturating_sub(start));
    (0..take)
        .filter_map(|i| queues.get((start + i) % q).cloned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(assigned: &[MessageQueue]) -> Vec<i32> {
        assigned.iter().map(|q| q.queue_id).collect()
    }

    #[test]
    fn same_table_as_java() {
        let queues: Vec<MessageQueue> = (0..8).map(|i| MessageQueue::new("T", "b", i)).collect();
        let clients = |n: usize| (0..n).map(|i| format!("c{i}")).collect::<Vec<_>>();
        // (clients, client index) -> queue ids, as AllocateMessageQueueAveragely assigns them.
        let table: &[(usize, usize, &[i32])] = &[
            (1, 0, &[0, 1, 2, 3, 4, 5, 6, 7]),
            (2, 0, &[0, 1, 2, 3]),
            (2, 1, &[4, 5, 6, 7]),
            (3, 0, &[0, 1, 2]),
            (3, 1, &[3, 4, 5]),
            (3, 2, &[6, 7]),
            (5, 0, &[0, 1]),
            (5, 2, &[4, 5]),
            (5, 3, &[6]),
            (5, 4, &[7]),
            (8, 7, &[7]),
            (10, 8, &[]),
            (10, 9, &[]),
        ];
        for (n, i, want) in table {
            let got = allocate_averagely(&format!("c{i}"), &queues, &clients(*n));
            assert_eq!(ids(&got), *want, "{n} clients, client {i}");
        }
    }

    #[test]
    fn input_order_does_not_matter_and_strangers_get_nothing() {
        let mut queues: Vec<MessageQueue> =
            (0..4).map(|i| MessageQueue::new("T", "b", i)).collect();
        queues.reverse();
        let clients = vec!["z".to_string(), "a".to_string()];
        assert_eq!(ids(&allocate_averagely("a", &queues, &clients)), [0, 1]);
        assert_eq!(ids(&allocate_averagely("z", &queues, &clients)), [2, 3]);
        assert!(allocate_averagely("x", &queues, &clients).is_empty());
        assert!(allocate_averagely("a", &[], &clients).is_empty());
    }

    #[test]
    fn every_queue_is_assigned_exactly_once() {
        let queues: Vec<MessageQueue> = (0..13).map(|i| MessageQueue::new("T", "b", i)).collect();
        for n in 1..=15 {
            let clients: Vec<String> = (0..n).map(|i| format!("c{i:02}")).collect();
            let mut all: Vec<MessageQueue> = clients
                .iter()
                .flat_map(|c| allocate_averagely(c, &queues, &clients))
                .collect();
            all.sort();
            assert_eq!(all, queues, "{n} clients");
        }
    }
}
