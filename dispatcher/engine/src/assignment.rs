//! Min-cost assignment for surges: many open slots (an incident's offers still
//! to make) matched to people at once, instead of one incident at a time.
//!
//! The problem is sparse: each slot lists only its few nearest qualified
//! people, with an integer cost (ETA in seconds plus a workload penalty).
//! A slot may also stay unmatched at its own cost, which is set far above any
//! travel cost so that the matching first staffs as many slots as it can,
//! most urgent first, and only then minimises total cost.
//!
//! The solver is the Hungarian method in its shortest-augmenting-path form
//! (Jonker–Volgenant): slots are inserted one by one, each by a Dijkstra
//! search over reduced costs for the cheapest way to free a person for it,
//! re-routing earlier slots when that is cheaper overall. After every
//! insertion the matching is optimal for the slots inserted so far. With
//! plenty of people near each slot the searches stop after a few steps.
//!
//! Work is bounded by a step count, not by wall-clock time, so that the same
//! input always gives the same matching: slots not reached within the budget
//! are returned unsolved, and the caller falls back to greedy for them.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// One slot's options: (person column, cost). Costs must be non-negative.
pub type Options = Vec<(usize, i64)>;

/// The answer: for each slot, the person column it got (None: unmatched,
/// either because that was cheapest or because the budget ran out).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Matching {
    pub slot_to_person: Vec<Option<usize>>,
    /// Slots inserted before the budget ran out; the matching is optimal over
    /// slots `0..solved`, and slots from `solved` on are unmatched.
    pub solved: usize,
    /// Search steps used (heap pops and edge relaxations).
    pub steps: u64,
}

impl Matching {
    /// Sum of the chosen options' costs plus `unmatched_cost` of each slot
    /// left without a person.
    pub fn total_cost(&self, options: &[Options], unmatched_cost: &[i64]) -> i64 {
        self.slot_to_person
            .iter()
            .enumerate()
            .map(|(slot, person)| match person {
                Some(person) => {
                    options[slot].iter().find(|(column, _)| column == person).map_or(unmatched_cost[slot], |(_, cost)| *cost)
                }
                None => unmatched_cost[slot],
            })
            .sum()
    }
}

/// Matches slots to people at minimum total cost. `options[slot]` lists the
/// people (columns `0..people`) the slot may take and their costs;
/// `unmatched_cost[slot]` is the cost of leaving it without anyone.
/// Slots are inserted in order, so put the most urgent first: when the step
/// budget runs out, the ones left are the least urgent.
pub fn min_cost_matching(options: &[Options], unmatched_cost: &[i64], people: usize, max_steps: u64) -> Matching {
    let slots = options.len();
    debug_assert_eq!(unmatched_cost.len(), slots);
    // Columns 0..people are people; column people + slot is that slot's
    // private "nobody" column, so every slot always has a free option.
    let columns = people + slots;
    let mut slot_potential = vec![0i64; slots];
    let mut column_potential = vec![0i64; columns];
    let mut slot_of_column: Vec<Option<usize>> = vec![None; columns];
    let mut column_of_slot: Vec<Option<usize>> = vec![None; slots];

    let mut distance = vec![i64::MAX; columns];
    let mut reached_from = vec![usize::MAX; columns];
    let mut done = vec![false; columns];
    let mut touched: Vec<usize> = Vec::new();
    let mut finished: Vec<usize> = Vec::new();
    let mut heap: BinaryHeap<Reverse<(i64, usize)>> = BinaryHeap::new();
    let mut steps = 0u64;
    let mut solved = 0;

    'slots: for new_slot in 0..slots {
        for column in touched.drain(..) {
            distance[column] = i64::MAX;
            reached_from[column] = usize::MAX;
            done[column] = false;
        }
        finished.clear();
        heap.clear();

        // Relaxes every option of `slot`, reached at `base` distance.
        let relax = |slot: usize,
                     base: i64,
                     distance: &mut [i64],
                     reached_from: &mut [usize],
                     touched: &mut Vec<usize>,
                     heap: &mut BinaryHeap<Reverse<(i64, usize)>>,
                     column_potential: &[i64],
                     slot_potential: &[i64]|
         -> u64 {
            let nobody = (people + slot, unmatched_cost[slot]);
            let mut relaxed = 0;
            for &(column, cost) in options[slot].iter().chain(std::iter::once(&nobody)) {
                debug_assert!(cost >= 0, "costs are non-negative");
                let reduced = cost - slot_potential[slot] - column_potential[column];
                debug_assert!(reduced >= 0, "reduced costs stay non-negative");
                let candidate = base + reduced;
                relaxed += 1;
                if candidate < distance[column] {
                    if distance[column] == i64::MAX {
                        touched.push(column);
                    }
                    distance[column] = candidate;
                    reached_from[column] = slot;
                    heap.push(Reverse((candidate, column)));
                }
            }
            relaxed
        };

        steps +=
            relax(new_slot, 0, &mut distance, &mut reached_from, &mut touched, &mut heap, &column_potential, &slot_potential);
        let (free_column, shortest) = loop {
            if steps > max_steps {
                break 'slots;
            }
            let Some(Reverse((dist, column))) = heap.pop() else {
                unreachable!("the slot's own nobody column is always reachable");
            };
            steps += 1;
            if done[column] || dist > distance[column] {
                continue;
            }
            done[column] = true;
            finished.push(column);
            match slot_of_column[column] {
                None => break (column, dist),
                Some(holder) => {
                    steps += relax(
                        holder,
                        dist,
                        &mut distance,
                        &mut reached_from,
                        &mut touched,
                        &mut heap,
                        &column_potential,
                        &slot_potential,
                    );
                }
            }
        };

        // Potentials: keep every reduced cost non-negative and the matched
        // (and soon matched) pairs at zero.
        slot_potential[new_slot] += shortest;
        for &column in &finished {
            let slack = shortest - distance[column];
            column_potential[column] -= slack;
            if let Some(holder) = slot_of_column[column] {
                slot_potential[holder] += slack;
            }
        }
        // Augment along the path back to the new slot.
        let mut column = free_column;
        loop {
            let slot = reached_from[column];
            let previous = column_of_slot[slot];
            column_of_slot[slot] = Some(column);
            slot_of_column[column] = Some(slot);
            if slot == new_slot {
                break;
            }
            column = previous.unwrap_or_else(|| unreachable!("a slot on the path holds the column it was reached by"));
        }
        solved = new_slot + 1;
    }

    let slot_to_person = column_of_slot
        .into_iter()
        .enumerate()
        .map(|(slot, column)| if slot < solved { column.filter(|column| *column < people) } else { None })
        .collect();
    Matching { slot_to_person, solved, steps }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Every assignment of slots to distinct people or nobody, cheapest total.
    fn brute_force(options: &[Options], unmatched_cost: &[i64], people: usize) -> i64 {
        fn walk(slot: usize, options: &[Options], unmatched_cost: &[i64], taken: &mut Vec<bool>, so_far: i64, best: &mut i64) {
            if slot == options.len() {
                *best = (*best).min(so_far);
                return;
            }
            walk(slot + 1, options, unmatched_cost, taken, so_far + unmatched_cost[slot], best);
            for &(column, cost) in &options[slot] {
                if !taken[column] {
                    taken[column] = true;
                    walk(slot + 1, options, unmatched_cost, taken, so_far + cost, best);
                    taken[column] = false;
                }
            }
        }
        let mut best = i64::MAX;
        walk(0, options, unmatched_cost, &mut vec![false; people], 0, &mut best);
        best
    }

    fn problem() -> impl Strategy<Value = (Vec<Options>, Vec<i64>, usize)> {
        (1..7usize, 1..8usize).prop_flat_map(|(slots, people)| {
            let options = prop::collection::vec(prop::collection::btree_map(0..people, 0..500i64, 0..=people), slots)
                .prop_map(|maps| maps.into_iter().map(|map| map.into_iter().collect::<Options>()).collect::<Vec<_>>());
            let unmatched = prop::collection::vec(prop_oneof![Just(100_000i64), Just(1_000_000), 0..600i64], slots);
            (options, unmatched, Just(people))
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]
        #[test]
        fn the_matching_costs_what_the_best_assignment_costs((options, unmatched, people) in problem()) {
            let matching = min_cost_matching(&options, &unmatched, people, u64::MAX);
            prop_assert_eq!(matching.solved, options.len());
            let mut used = std::collections::BTreeSet::new();
            for (slot, person) in matching.slot_to_person.iter().enumerate() {
                if let Some(person) = person {
                    prop_assert!(used.insert(*person), "person {} matched twice", person);
                    prop_assert!(options[slot].iter().any(|(column, _)| column == person), "slot {} got a person it does not list", slot);
                }
            }
            prop_assert_eq!(matching.total_cost(&options, &unmatched), brute_force(&options, &unmatched, people));
        }
    }

    #[test]
    fn greedy_order_is_undone_when_that_is_cheaper() {
        // Slot 0 alone would take person 0 (cost 1); slot 1 can only use person 0.
        let options = vec![vec![(0, 1), (1, 5)], vec![(0, 2)]];
        let matching = min_cost_matching(&options, &[1_000_000, 1_000_000], 2, u64::MAX);
        assert_eq!(matching.slot_to_person, vec![Some(1), Some(0)]);
    }

    #[test]
    fn a_small_budget_leaves_the_later_slots_unsolved() {
        let options: Vec<Options> = (0..50).map(|slot| vec![(slot, 10), (slot + 1, 11)]).collect();
        let unmatched = vec![1_000_000; 50];
        let matching = min_cost_matching(&options, &unmatched, 51, 40);
        assert!(matching.solved < 50, "{matching:?}");
        assert!(matching.slot_to_person[matching.solved..].iter().all(Option::is_none));
        let full = min_cost_matching(&options, &unmatched, 51, u64::MAX);
        assert_eq!(full.solved, 50);
        assert!(full.slot_to_person.iter().all(Option::is_some));
    }
}
