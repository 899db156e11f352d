//! Group commit under concurrency, shipping through the handle, and
//! shutdown.

use std::collections::BTreeMap;

use super::*;

const OPTS: SpoolOptions = SpoolOptions {
    max_bytes: 64 << 20,
    segment_bytes: 64 << 10,
    preallocate_bytes: 8 << 10,
    max_record_bytes: 1024,
};

fn payload(thread: usize, i: usize) -> Vec<u8> {
    let mut p = format!("thread {thread} record {i} ").into_bytes();
    p.resize(40 + (thread * 31 + i * 7) % 200, b'.');
    p
}

#[test]
fn concurrent_appends_get_unique_seqs_in_order_and_share_fsyncs() {
    const THREADS: usize = 8;
    const EACH: usize = 150;
    let dir = tempfile::tempdir().unwrap();
    let spool = GroupCommit::open(dir.path(), OPTS).unwrap();
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let spool = spool.clone();
            thread::spawn(move || {
                (0..EACH)
                    .map(|i| (spool.append(payload(t, i)).unwrap(), payload(t, i)))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut acked = BTreeMap::new();
    for h in handles {
        for (seq, p) in h.join().unwrap() {
            assert!(acked.insert(seq, p).is_none(), "seq {seq} handed out twice");
        }
    }
    let total = (THREADS * EACH) as u64;
    assert_eq!(
        acked.keys().copied().collect::<Vec<_>>(),
        (0..total).collect::<Vec<_>>()
    );

    let batch = spool.read_batch(0, usize::MAX, usize::MAX).unwrap();
    assert_eq!(batch.seqs(), 0..total);
    for (seq, record) in batch.iter() {
        assert_eq!(record, acked[&seq].as_slice(), "seq {seq}");
    }
    let stats = spool.stats().unwrap();
    assert_eq!(stats.appended, total);
    assert!(
        stats.syncs < total,
        "{} fsyncs for {total} appends: no grouping",
        stats.syncs
    );
    eprintln!("{total} appends in {} fsyncs", stats.syncs);
}

#[test]
fn shipping_goes_through_the_handle() {
    let dir = tempfile::tempdir().unwrap();
    let spool = GroupCommit::open(dir.path(), OPTS).unwrap();
    for i in 0..10 {
        assert_eq!(spool.append(payload(0, i)).unwrap(), i as u64);
    }
    let batch = spool.read_batch(0, 4, usize::MAX).unwrap();
    assert_eq!(batch.seqs(), 0..4);
    spool.ack(batch.last_seq().unwrap()).unwrap();
    let stats = spool.stats().unwrap();
    assert_eq!((stats.oldest_pending, stats.pending_records), (Some(4), 6));
    assert_eq!(spool.read_batch(0, 100, usize::MAX).unwrap().seqs(), 4..10);
    assert!(matches!(
        spool.ack(10),
        Err(SpoolError::AckBeyondEnd { .. })
    ));
    // An oversized record fails alone, before it reaches a group.
    assert!(matches!(
        spool.append(vec![0; 1025]),
        Err(SpoolError::RecordTooLarge { len: 1025, .. })
    ));
    assert_eq!(spool.append(payload(0, 10)).unwrap(), 10);
}

#[test]
fn a_full_spool_fails_every_caller_of_the_group() {
    let dir = tempfile::tempdir().unwrap();
    let opts = SpoolOptions {
        max_bytes: 4096,
        segment_bytes: 4096,
        max_record_bytes: 1024,
        ..OPTS
    };
    let spool = GroupCommit::open(dir.path(), opts).unwrap();
    let mut n = 0u64;
    let err = loop {
        match spool.append(vec![7; 1000]) {
            Ok(seq) => {
                assert_eq!(seq, n);
                n += 1;
            }
            Err(e) => break e,
        }
    };
    assert_eq!(n, 4);
    assert!(matches!(err, SpoolError::Full { max: 4096, .. }));
    spool.ack(n - 1).unwrap();
    assert_eq!(spool.append(vec![7; 1000]).unwrap(), n);
}

#[test]
fn close_and_drop_commit_then_stop_the_writer() {
    let dir = tempfile::tempdir().unwrap();
    let spool = GroupCommit::open(dir.path(), OPTS).unwrap();
    let other = spool.clone();
    spool.append(b"one".to_vec()).unwrap();
    spool.close();
    // Every handle sees the close; the directory is free again.
    assert!(matches!(
        other.append(b"two".to_vec()),
        Err(SpoolError::Closed)
    ));
    assert!(matches!(other.stats(), Err(SpoolError::Closed)));
    other.close();
    let reopened = Spool::open(dir.path(), OPTS).unwrap();
    assert_eq!(reopened.stats().last_seq, Some(0));
    drop(reopened);

    // Dropping the last handle joins the writer, which releases the lock.
    let spool = GroupCommit::open(dir.path(), OPTS).unwrap();
    let clone = spool.clone();
    assert_eq!(clone.append(b"two".to_vec()).unwrap(), 1);
    drop(spool);
    drop(clone);
    let reopened = Spool::open(dir.path(), OPTS).unwrap();
    assert_eq!(reopened.stats().last_seq, Some(1));
}

#[test]
fn append_then_reports_durable_seqs_without_blocking_the_caller() {
    let dir = tempfile::tempdir().unwrap();
    let spool = GroupCommit::open(dir.path(), OPTS).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    for i in 0..50 {
        let tx = tx.clone();
        spool.append_then(payload(1, i), move |r| tx.send((i, r)).unwrap());
    }
    // Oversized: refused at once, through the same callback.
    let tx2 = tx.clone();
    spool.append_then(vec![0; 1025], move |r| tx2.send((999, r)).unwrap());
    drop(tx);
    let mut got: BTreeMap<usize, u64> = BTreeMap::new();
    for (i, r) in rx {
        match r {
            Ok(seq) => {
                got.insert(i, seq);
            }
            Err(SpoolError::RecordTooLarge { len: 1025, .. }) => assert_eq!(i, 999),
            Err(e) => panic!("{e}"),
        }
    }
    // Queued in order from one thread, so sequenced in that order.
    assert_eq!(got.len(), 50);
    assert!(got.iter().all(|(i, seq)| *i as u64 == *seq));
    // Durable: a reopened spool holds every record.
    spool.close();
    let reopened = Spool::open(dir.path(), OPTS).unwrap();
    assert_eq!(reopened.stats().pending_records, 50);
    // After close, the callback still hears about it.
    let (tx, rx) = std::sync::mpsc::channel();
    spool.append_then(payload(0, 0), move |r| tx.send(r).unwrap());
    assert!(matches!(rx.recv().unwrap(), Err(SpoolError::Closed)));
}

fn control() -> Request {
    let (reply, _) = mpsc::sync_channel(1);
    Request::Control(Control::Stats { reply })
}

#[test]
fn only_a_group_behind_a_concurrent_one_waits_for_siblings() {
    let (tx, rx) = mpsc::channel();
    let now = Instant::now();
    // A queued request is picked up when the last group had siblings and
    // this one is still smaller.
    tx.send(control()).unwrap();
    assert!(wait_for_siblings(&rx, 1, 4, now).is_some());
    // Nothing is waited for after a lone group, once this group is as big
    // as the last, or for an empty group: the request stays queued.
    tx.send(control()).unwrap();
    assert!(wait_for_siblings(&rx, 1, 1, now).is_none());
    assert!(wait_for_siblings(&rx, 4, 4, now).is_none());
    assert!(wait_for_siblings(&rx, 0, 4, now).is_none());
    // Nor once the group's wait is used up.
    let long_ago = now.checked_sub(SIBLING_WAIT * 2).unwrap();
    assert!(wait_for_siblings(&rx, 1, 4, long_ago).is_none());
    assert!(rx.try_recv().is_ok(), "the request was left queued");
    // With nothing coming, the wait ends by itself.
    assert!(wait_for_siblings(&rx, 1, 4, Instant::now()).is_none());
}
