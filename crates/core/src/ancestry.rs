//! Many "is `a` upstream of `t`?" questions about one graph, as validation asks them: one per
//! `tasks.x` reference. [`Dag::is_ancestor`] answers one question by climbing from `t`, which
//! costs the part of the graph between the two; asked about the same far ancestor from every
//! task (every task of a chain reading `tasks.t0.outputs`), that sums to the square of the
//! graph. Here an ancestor that has cost a graph's worth of climbing gets its descendants
//! marked once, and later questions about it are a lookup, so such a pipeline validates in
//! linear time.

use std::cell::RefCell;
use std::collections::HashMap;

use crate::dag::{Dag, TaskIndex};

/// The answers' cache, for one [`Dag`].
#[derive(Debug, Default)]
pub struct Ancestry {
    inner: RefCell<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    visited: Vec<u32>,
    climb: u32,
    /// Per ancestor asked about, the tasks climbed through so far on its account.
    cost: HashMap<TaskIndex, usize>,
    /// Ancestors whose every descendant is marked.
    descendants: HashMap<TaskIndex, Vec<bool>>,
}

impl Ancestry {
    /// Whether `ancestor` is upstream of `task` in `dag`, directly or through other tasks.
    pub fn is_ancestor(&self, dag: &Dag, ancestor: TaskIndex, task: TaskIndex) -> bool {
        let mut inner = self.inner.borrow_mut();
        if let Some(marked) = inner.descendants.get(&ancestor) {
            return marked[task];
        }
        let (found, steps) = inner.climb(dag, ancestor, task);
        let spent = inner.cost.entry(ancestor).or_default();
        *spent += steps;
        if *spent > dag.len() {
            let marked = descendants(dag, ancestor);
            inner.descendants.insert(ancestor, marked);
        }
        found
    }
}

impl Inner {
    /// [`Dag::climb`] with a visited set that needs no clearing between climbs: per task, the
    /// number of the climb that last visited it.
    fn climb(&mut self, dag: &Dag, ancestor: TaskIndex, task: TaskIndex) -> (bool, usize) {
        if self.visited.len() != dag.len() || self.climb == u32::MAX {
            self.visited = vec![0; dag.len()];
            self.climb = 0;
        }
        self.climb += 1;
        let (climb, visited) = (self.climb, &mut self.visited);
        dag.climb(ancestor, task, |t| {
            std::mem::replace(&mut visited[t], climb) != climb
        })
    }
}

/// Every task downstream of `ancestor`, marked.
fn descendants(dag: &Dag, ancestor: TaskIndex) -> Vec<bool> {
    let mut marked = vec![false; dag.len()];
    let mut stack = dag.downstream[ancestor].clone();
    while let Some(t) = stack.pop() {
        if !marked[t] {
            marked[t] = true;
            stack.extend(&dag.downstream[t]);
        }
    }
    marked
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A chain 0 → 1 → … → n-1, with a side task n needing 0 only.
    fn chain_with_side(n: usize) -> Dag {
        let mut upstream: Vec<Vec<TaskIndex>> = (0..n)
            .map(|t| t.checked_sub(1).into_iter().collect())
            .collect();
        upstream.push(vec![0]);
        Dag::build(upstream).expect("no cycle")
    }

    #[test]
    fn agrees_with_the_single_question_before_and_after_marking() {
        let dag = chain_with_side(50);
        let a = Ancestry::default();
        // Asked from every task, ancestor 0 gets marked after a few questions; asking again
        // (both orders) must give the same answers as a fresh climb.
        for _ in 0..2 {
            for t in 0..dag.len() {
                for ancestor in [0, 1, 25, 49, 50] {
                    assert_eq!(
                        a.is_ancestor(&dag, ancestor, t),
                        dag.is_ancestor(ancestor, t),
                        "{ancestor} -> {t}"
                    );
                }
            }
        }
        let inner = a.inner.borrow();
        assert!(inner.descendants.contains_key(&0), "0 was marked");
        assert!(inner.descendants.contains_key(&1), "1 was marked");
        // The side task's descendants are none: marking it is never worth it.
        assert!(!inner.descendants[&1][50]);
        assert!(inner.descendants[&0][50]);
    }

    #[test]
    fn an_ancestor_is_marked_once_it_cost_a_graphs_worth() {
        let dag = chain_with_side(100);
        let a = Ancestry::default();
        // One climb from the end costs 99 tasks: not yet a graph's worth (101).
        assert!(a.is_ancestor(&dag, 0, 99));
        assert!(!a.inner.borrow().descendants.contains_key(&0));
        // A second one does.
        assert!(a.is_ancestor(&dag, 0, 98));
        assert!(a.inner.borrow().descendants.contains_key(&0));
        assert_eq!(a.inner.borrow().cost[&0], 197);
    }

    #[test]
    fn a_task_is_not_its_own_ancestor() {
        let dag = chain_with_side(3);
        let a = Ancestry::default();
        for _ in 0..10 {
            assert!(!a.is_ancestor(&dag, 2, 2));
            assert!(!a.is_ancestor(&dag, 0, 0));
        }
    }
}
