//! The task graph: topological order, layers, and cycle detection, all linear in the size of
//! the graph so that 100,000-task pipelines validate quickly.
//!
//! Hand-written rather than petgraph: we need the cycle itself (to print `a -> b -> a`) and
//! longest-path layers, which petgraph does not provide, and the whole thing is one pass of
//! Kahn's algorithm.

use serde::Serialize;

/// Index of a task in its pipeline's task list.
pub type TaskIndex = usize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Dag {
    /// For each task, the tasks it needs (edges point from these to it).
    pub upstream: Vec<Vec<TaskIndex>>,
    /// For each task, the tasks that need it.
    pub downstream: Vec<Vec<TaskIndex>>,
    /// Every task, upstream before downstream; ties keep file order.
    pub order: Vec<TaskIndex>,
    /// Longest distance from a root: roots are layer 0.
    pub layer: Vec<usize>,
    /// Each task's place in `order`.
    #[serde(skip)]
    pub position: Vec<usize>,
}

impl Dag {
    /// Builds the graph from each task's `needs`. On cycles, returns each cycle found as the
    /// list of tasks along it in execution order, starting and ending with the same task.
    pub fn build(upstream: Vec<Vec<TaskIndex>>) -> Result<Self, Vec<Vec<TaskIndex>>> {
        let n = upstream.len();
        let mut downstream = vec![Vec::new(); n];
        let mut indegree = vec![0usize; n];
        for (task, ups) in upstream.iter().enumerate() {
            indegree[task] = ups.len();
            for &u in ups {
                downstream[u].push(task);
            }
        }
        // Kahn's algorithm with a FIFO of ready tasks; seeding in file order keeps the order
        // deterministic and close to what the author wrote.
        let mut order = Vec::with_capacity(n);
        let mut layer = vec![0usize; n];
        let mut queue: std::collections::VecDeque<TaskIndex> =
            (0..n).filter(|&t| indegree[t] == 0).collect();
        while let Some(t) = queue.pop_front() {
            order.push(t);
            for &d in &downstream[t] {
                layer[d] = layer[d].max(layer[t] + 1);
                indegree[d] -= 1;
                if indegree[d] == 0 {
                    queue.push_back(d);
                }
            }
        }
        if order.len() == n {
            let mut position = vec![0; n];
            for (i, &t) in order.iter().enumerate() {
                position[t] = i;
            }
            return Ok(Self {
                upstream,
                downstream,
                order,
                layer,
                position,
            });
        }
        Err(find_cycles(&upstream, &indegree))
    }

    pub fn len(&self) -> usize {
        self.upstream.len()
    }

    pub fn is_empty(&self) -> bool {
        self.upstream.is_empty()
    }

    /// Tasks grouped by layer, each group in file order.
    pub fn layers(&self) -> Vec<Vec<TaskIndex>> {
        let depth = self.layer.iter().max().map_or(0, |m| m + 1);
        let mut out = vec![Vec::new(); depth];
        for (task, &l) in self.layer.iter().enumerate() {
            out[l].push(task);
        }
        out
    }

    /// Whether `ancestor` is upstream of `task`, directly or through other tasks.
    ///
    /// A query costs the part of the graph between the two tasks; for many questions about
    /// one graph, [`crate::ancestry::Ancestry`] keeps the total linear.
    pub fn is_ancestor(&self, ancestor: TaskIndex, task: TaskIndex) -> bool {
        let mut seen = std::collections::HashSet::new();
        self.climb(ancestor, task, |t| seen.insert(t)).0
    }

    /// Climbs from `task` looking for `ancestor`, and prunes every task ordered before
    /// `ancestor`: none of those can be downstream of it. `first_visit` says whether a task is
    /// seen for the first time (and notes it). Returns the answer and the tasks climbed through.
    pub(crate) fn climb(
        &self,
        ancestor: TaskIndex,
        task: TaskIndex,
        mut first_visit: impl FnMut(TaskIndex) -> bool,
    ) -> (bool, usize) {
        let floor = self.position[ancestor];
        let mut steps = 0;
        let mut stack: Vec<TaskIndex> = self.upstream[task].clone();
        while let Some(t) = stack.pop() {
            steps += 1;
            if t == ancestor {
                return (true, steps);
            }
            if self.position[t] > floor && first_visit(t) {
                stack.extend(&self.upstream[t]);
            }
        }
        (false, steps)
    }
}

/// Tasks left with a positive in-degree after Kahn's algorithm are on a cycle or downstream of
/// one. Each has an unfinished upstream, so walking upstream from any of them must revisit a
/// task; the revisited stretch is a cycle. Every task is walked at most once, so this is linear.
fn find_cycles(upstream: &[Vec<TaskIndex>], indegree: &[usize]) -> Vec<Vec<TaskIndex>> {
    const UNSEEN: usize = usize::MAX;
    let n = upstream.len();
    // The walk that first visited each task, so a walk stops when it meets an earlier one.
    let mut walk_of = vec![UNSEEN; n];
    let mut cycles = Vec::new();
    for start in 0..n {
        if indegree[start] == 0 || walk_of[start] != UNSEEN {
            continue;
        }
        let mut path = Vec::new();
        let mut t = start;
        loop {
            if walk_of[t] == start {
                let from = path.iter().position(|&p| p == t).unwrap_or(0);
                // The walk went upstream; reverse it to read in execution order.
                let mut cycle: Vec<TaskIndex> = path[from..].iter().rev().copied().collect();
                // Start at the task written first, so the message is stable and easy to find.
                let first = (0..cycle.len()).min_by_key(|&i| cycle[i]).unwrap_or(0);
                cycle.rotate_left(first);
                cycle.push(cycle[0]);
                cycles.push(cycle);
                break;
            }
            if walk_of[t] != UNSEEN {
                break;
            }
            walk_of[t] = start;
            path.push(t);
            match upstream[t].iter().find(|&&u| indegree[u] > 0) {
                Some(&u) => t = u,
                None => break,
            }
        }
    }
    cycles
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_and_layers() {
        // a -> b -> d, a -> c -> d
        let dag = Dag::build(vec![vec![], vec![0], vec![0], vec![1, 2]]).expect("acyclic");
        assert_eq!(dag.order, vec![0, 1, 2, 3]);
        assert_eq!(dag.layers(), vec![vec![0], vec![1, 2], vec![3]]);
        assert!(dag.is_ancestor(0, 3));
        assert!(dag.is_ancestor(1, 3));
        assert!(!dag.is_ancestor(3, 0));
        assert!(!dag.is_ancestor(1, 2));
    }

    #[test]
    fn finds_each_cycle_once() {
        // 0 -> 1 -> 2 -> 0, 3 self-loop, 4 downstream of the first cycle only.
        let cycles =
            Dag::build(vec![vec![2], vec![0], vec![1], vec![3], vec![2]]).expect_err("cyclic");
        assert_eq!(cycles, vec![vec![0, 1, 2, 0], vec![3, 3]]);
    }

    #[test]
    fn long_chain_with_cycle_at_the_end_is_found() {
        let n = 100_000;
        let mut ups: Vec<Vec<usize>> = (0..n)
            .map(|i| if i == 0 { vec![] } else { vec![i - 1] })
            .collect();
        ups[n - 10].push(n - 1);
        let cycles = Dag::build(ups).expect_err("cyclic");
        assert_eq!(cycles.len(), 1);
        assert_eq!(cycles[0].len(), 11);
    }

    #[test]
    fn ancestry_through_a_chain_of_diamonds_visits_each_task_once() {
        // 0 is unrelated; then 60 diamonds: top -> left, right -> next top. The last top has
        // 2^60 upstream paths, so a search that revisits tasks would never end.
        let mut ups: Vec<Vec<usize>> = vec![vec![], vec![]];
        let mut top = 1;
        for _ in 0..60 {
            let (left, right) = (ups.len(), ups.len() + 1);
            ups.push(vec![top]);
            ups.push(vec![top]);
            ups.push(vec![left, right]);
            top = ups.len() - 1;
        }
        let dag = Dag::build(ups).expect("acyclic");
        assert!(!dag.is_ancestor(0, top));
        assert!(dag.is_ancestor(1, top));
        assert!(dag.is_ancestor(2, top));
        assert!(
            !dag.is_ancestor(2, 3),
            "the two sides of a diamond are not related"
        );
    }

    #[test]
    fn sizes() {
        let empty = Dag::build(Vec::new()).expect("acyclic");
        assert!(empty.is_empty());
        assert_eq!(empty.len(), 0);
        let one = Dag::build(vec![vec![]]).expect("acyclic");
        assert!(!one.is_empty());
        assert_eq!(one.len(), 1);
    }

    #[test]
    fn wide_fan_in_is_linear() {
        let n = 100_000;
        let mut ups: Vec<Vec<usize>> = vec![Vec::new(); n];
        ups[n - 1] = (0..n - 1).collect();
        let dag = Dag::build(ups).expect("acyclic");
        assert_eq!(dag.layers().len(), 2);
    }
}
