//! Batches from a queue, for the writers that share one commit (one fsync)
//! among every request that arrived while the last one was being written.

use tokio::sync::mpsc::Receiver;

/// Most items one batch takes.
pub const MAX: usize = 256;

/// Waits for the next item, then takes whatever else is already queued, up
/// to [`MAX`]; `None` once the queue is closed and empty.
pub async fn next<T>(queue: &mut Receiver<T>) -> Option<Vec<T>> {
    let first = queue.recv().await?;
    let mut batch = vec![first];
    while batch.len() < MAX {
        match queue.try_recv() {
            Ok(item) => batch.push(item),
            Err(_) => break,
        }
    }
    Some(batch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn takes_what_is_queued_up_to_the_limit_and_ends_when_closed() {
        let (tx, mut rx) = tokio::sync::mpsc::channel(1024);
        for i in 0..(MAX + 3) {
            tx.send(i).await.unwrap();
        }
        drop(tx);
        assert_eq!(next(&mut rx).await.unwrap().len(), MAX);
        assert_eq!(next(&mut rx).await.unwrap(), [MAX, MAX + 1, MAX + 2]);
        assert_eq!(next(&mut rx).await, None);
    }
}
