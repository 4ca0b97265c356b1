//! The two priority lanes of deliveries waiting for a slot.
//!
//! RabbitMQ's quorum queues (all of them on 3.10, Debian 12's) have no
//! message priorities, so priority is two queues: `interactive` (an editor
//! waiting) and `batch`. Each consumer prefetches up to `slots` deliveries;
//! when a slot frees, a waiting interactive delivery goes first, except that
//! after `batch_every` interactive starts in a row while a batch delivery
//! waits, the batch one goes: a stream of interactive work slows batch work
//! down but never stops it.

use std::collections::VecDeque;

/// Which queue a delivery came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lane {
    Interactive,
    Batch,
}

impl Lane {
    pub fn name(self) -> &'static str {
        match self {
            Lane::Interactive => "interactive",
            Lane::Batch => "batch",
        }
    }
}

/// Deliveries waiting for a slot, by lane, oldest first.
#[derive(Debug)]
pub(crate) struct Lanes<T> {
    interactive: VecDeque<T>,
    batch: VecDeque<T>,
    /// Interactive starts in a row while batch work waited.
    streak: u32,
    batch_every: u32,
}

impl<T> Lanes<T> {
    pub fn new(batch_every: u32) -> Self {
        Self {
            interactive: VecDeque::new(),
            batch: VecDeque::new(),
            streak: 0,
            batch_every: batch_every.max(1),
        }
    }

    pub fn push(&mut self, lane: Lane, item: T) {
        match lane {
            Lane::Interactive => self.interactive.push_back(item),
            Lane::Batch => self.batch.push_back(item),
        }
    }

    /// The delivery the next free slot takes.
    pub fn next(&mut self) -> Option<(Lane, T)> {
        let batch_due = self.streak >= self.batch_every;
        if !self.interactive.is_empty() && (self.batch.is_empty() || !batch_due) {
            if !self.batch.is_empty() {
                self.streak += 1;
            }
            return self.interactive.pop_front().map(|t| (Lane::Interactive, t));
        }
        self.streak = 0;
        self.batch.pop_front().map(|t| (Lane::Batch, t))
    }

    /// Takes out the first waiting delivery `matches` picks (a cancelled one).
    pub fn remove(&mut self, matches: impl Fn(&T) -> bool) -> Option<T> {
        for q in [&mut self.interactive, &mut self.batch] {
            if let Some(i) = q.iter().position(&matches) {
                return q.remove(i);
            }
        }
        None
    }

    /// Everything waiting (a shutdown hands it back).
    pub fn drain(&mut self) -> Vec<T> {
        self.interactive
            .drain(..)
            .chain(self.batch.drain(..))
            .collect()
    }

    pub fn len(&self) -> usize {
        self.interactive.len() + self.batch.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interactive_goes_first_and_batch_is_never_starved() {
        let mut l = Lanes::new(2);
        for i in 0..3 {
            l.push(Lane::Batch, format!("b{i}"));
        }
        for i in 0..5 {
            l.push(Lane::Interactive, format!("i{i}"));
        }
        let order: Vec<String> = std::iter::from_fn(|| l.next().map(|(_, t)| t)).collect();
        assert_eq!(order, ["i0", "i1", "b0", "i2", "i3", "b1", "i4", "b2"]);
    }

    #[test]
    fn an_interactive_job_that_comes_later_starts_next() {
        let mut l = Lanes::new(4);
        for i in 0..10 {
            l.push(Lane::Batch, i);
        }
        assert_eq!(l.next(), Some((Lane::Batch, 0)));
        l.push(Lane::Interactive, 100);
        assert_eq!(l.next(), Some((Lane::Interactive, 100)));
        assert_eq!(l.next(), Some((Lane::Batch, 1)));
    }

    #[test]
    fn cancelled_deliveries_come_out_and_shutdown_drains() {
        let mut l = Lanes::new(4);
        l.push(Lane::Batch, 1);
        l.push(Lane::Interactive, 2);
        l.push(Lane::Batch, 3);
        assert_eq!(l.remove(|&t| t == 3), Some(3));
        assert_eq!(l.remove(|&t| t == 9), None);
        assert_eq!(l.len(), 2);
        assert_eq!(l.drain(), vec![2, 1]);
        assert_eq!(l.next(), None);
    }
}
