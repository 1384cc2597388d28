//! The producer-state machine against a plain model of Kafka's rules: every batch a producer
//! ever had accepted is kept (no five-batch window, no staging), and each rule is checked in
//! the words of the protocol. Random appends of a few producers, with resends, gaps and epoch
//! changes, must get the same verdicts and offsets from both; the state rebuilt by replaying
//! the stored batches (recovery) and the one read back from a snapshot must equal the live one.

use engine::batch::BatchMeta;
use proptest::prelude::*;
use replication::producer::{self, BatchRange, ProducerError, ProducerState, Verdict};

#[derive(Debug, Clone)]
struct Accepted {
    pid: i64,
    epoch: i16,
    range: BatchRange,
}

#[derive(Default)]
struct Model {
    history: Vec<Accepted>,
    next_offset: i64,
}

impl Model {
    fn of(&self, pid: i64) -> Vec<&Accepted> {
        self.history.iter().filter(|a| a.pid == pid).collect()
    }

    /// Kafka's verdict for one single-batch append.
    fn append(&mut self, pid: i64, epoch: i16, first_seq: i32, count: i32) -> Result<Verdict, &'static str> {
        let last_seq = producer::last_sequence(first_seq, count - 1);
        let mine = self.of(pid);
        let current = mine.last().map(|a| a.epoch);
        // In the current epoch, the producer's last five stored batches are remembered.
        let recent: Vec<&&Accepted> = mine.iter().rev().take_while(|a| Some(a.epoch) == current).take(5).collect();
        if let Some(dup) =
            recent.iter().find(|a| a.epoch == epoch && a.range.first_seq == first_seq && a.range.last_seq == last_seq)
        {
            return Ok(Verdict::Duplicate(dup.range));
        }
        match current {
            Some(c) if epoch < c => return Err("fenced"),
            Some(c) if epoch > c && first_seq != 0 => return Err("out of order"),
            Some(c) if epoch == c => {
                let last = mine.last().map(|a| a.range.last_seq).unwrap_or(-1);
                let follows = i64::from(first_seq) == i64::from(last) + 1 || (first_seq == 0 && last == i32::MAX);
                if !follows {
                    return Err("out of order");
                }
            }
            _ => {}
        }
        let range = BatchRange {
            first_seq,
            last_seq,
            first_offset: self.next_offset,
            last_offset: self.next_offset + i64::from(count) - 1,
        };
        self.next_offset += i64::from(count);
        self.history.push(Accepted { pid, epoch, range });
        Ok(Verdict::Append)
    }
}

fn meta(pid: i64, epoch: i16, seq: i32, count: i32) -> BatchMeta {
    BatchMeta {
        position: 0,
        size: 0,
        last_offset_delta: count - 1,
        record_count: count,
        max_timestamp: 0,
        producer_id: pid,
        producer_epoch: epoch,
        base_sequence: seq,
        attributes: 0,
    }
}

/// A producer's own view: its epoch, its next sequence, and the `(epoch, first sequence,
/// records)` of every batch it had stored.
type Client = (i16, i32, Vec<(i16, i32, i32)>);

/// What a test append sends: which producer, how its epoch and sequence relate to what it sent
/// before, and how many records.
#[derive(Debug, Clone)]
enum Seq {
    Next,
    /// Resend one of the producer's earlier batches (0: its latest).
    Resend(usize),
    /// Any sequence, likely a gap.
    Any(i32),
}

fn ops() -> impl Strategy<Value = Vec<(i64, i8, Seq, i32)>> {
    let seq = prop_oneof![
        6 => Just(Seq::Next),
        3 => (0usize..8).prop_map(Seq::Resend),
        1 => (0i32..40).prop_map(Seq::Any),
    ];
    // Epoch moves: mostly the same, sometimes a bump, rarely a stale one.
    let epoch = prop_oneof![8 => Just(0i8), 1 => Just(1i8), 1 => Just(-1i8)];
    proptest::collection::vec((0i64..3, epoch, seq, 1i32..4), 1..120)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn state_machine_agrees_with_the_plain_model(ops in ops()) {
        let mut model = Model::default();
        let mut state = ProducerState::default();
        // What each producer believes: its epoch, next sequence, and batches it sent.
        let mut clients: Vec<Client> = vec![(0, 0, Vec::new()); 3];
        for (pid, epoch_move, seq, count) in ops {
            let c = &mut clients[pid as usize];
            match epoch_move {
                1 => { c.0 += 1; c.1 = 0; }
                -1 if c.0 > 0 => c.0 -= 1,
                _ => {}
            }
            let (epoch, first_seq, count) = match seq {
                Seq::Next => (c.0, c.1, count),
                Seq::Resend(back) => match c.2.iter().rev().nth(back) {
                    Some(&(e, s, n)) => (e, s, n),
                    None => (c.0, c.1, count),
                },
                Seq::Any(s) => (c.0, s, count),
            };
            let expected = model.append(pid, epoch, first_seq, count);
            let first_offset = model.next_offset - if matches!(expected, Ok(Verdict::Append)) { i64::from(count) } else { 0 };
            let got = state.check_and_record(&[meta(pid, epoch, first_seq, count)], first_offset, 1000);
            match (&expected, &got) {
                (Ok(a), Ok(b)) => prop_assert_eq!(a, b),
                (Err("fenced"), Err(ProducerError::InvalidEpoch { .. })) => {}
                (Err("out of order"), Err(ProducerError::OutOfOrder { .. } | ProducerError::NewEpochNotAtZero { .. })) => {}
                _ => prop_assert!(false, "model {:?}, state {:?}", expected, got),
            }
            if matches!(got, Ok(Verdict::Append)) {
                c.2.push((epoch, first_seq, count));
                if epoch == c.0 {
                    c.1 = producer::last_sequence(first_seq, count - 1).wrapping_add(1);
                }
            }
        }
        // Recovery: replaying the stored batches in log order gives the same state.
        let mut replayed = ProducerState::default();
        for a in &model.history {
            replayed.replay(a.pid, a.epoch, 0, a.range, 1000);
        }
        prop_assert_eq!(&replayed, &state);
        let bytes = producer::encode_snapshot(&state, model.next_offset);
        prop_assert_eq!(producer::decode_snapshot(&bytes), Some((state.clone(), model.next_offset)));
    }
}
