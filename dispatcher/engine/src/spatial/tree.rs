//! The R-tree of located people behind [`super::PeopleIndex`]: our own,
//! not `rstar`'s, for two things `rstar` cannot do.
//!
//! - Every node carries a summary of the free people below it (whether
//!   there is any, and the skill bits any of them holds), so that a search
//!   for free holders of some skills skips whole subtrees that cannot hold
//!   one. One tree per travel mode then answers every such search, where
//!   `rstar` needed one more tree per skill bit, and a location update
//!   moved a free person in each of them.
//! - Entries are addressed by the person's dense number (the index keeps
//!   where each one is), so that removing someone does not search for
//!   them, and a move that stays inside the leaf's box changes the point
//!   in place.
//!
//! Points are unit vectors; distances are squared chords, computed exactly
//! as `rstar` computed them (the same sums in the same order), so that the
//! metres and arrival times the search gives did not change with the tree.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// What the candidate search filters on, copied into a person's index
/// entry, so that walking past someone who cannot qualify reads nothing
/// but the tree's own leaves: no id, no hash look-up, no string compare.
/// Kept in step by the engine (`Live`), like the live copies it mirrors.
/// (Here, beside the tree that holds it, so the tree needs nothing of
/// `spatial`.)
#[derive(Clone, Copy, Debug, Default)]
pub struct Indexed {
    /// The person's dense number: `Live::ids[slot]` is their id.
    pub slot: u32,
    /// Their skills as bits (`SkillBits`); skills beyond the bits are
    /// not in it, and a search asking for one of those filters on the
    /// rest only.
    pub skills: u64,
    /// A copy of "free to take an offer".
    pub free: bool,
}

/// A leaf or inner node holds at most this many entries or children; one
/// more splits it in two halves.
const NODE_MAX: usize = 16;

/// No node: the parent of the root.
const NONE: u32 = u32::MAX;

/// An axis-aligned box in 3-D; empty when `lo > hi`. In `f32`, rounded
/// outwards from the points' `f64`, so that it still holds them: half the
/// bytes read for every node a walk opens or an insertion chooses among
/// (the float is good to about half a metre on the earth, and a box a
/// little too big only costs a walk a little more).
#[derive(Clone, Copy, Debug)]
struct Bounds {
    lo: [f32; 3],
    hi: [f32; 3],
}

/// The greatest `f32` not above `value`.
fn round_down(value: f64) -> f32 {
    let rounded = value as f32;
    if f64::from(rounded) > value { rounded.next_down() } else { rounded }
}

/// The least `f32` not below `value`.
fn round_up(value: f64) -> f32 {
    let rounded = value as f32;
    if f64::from(rounded) < value { rounded.next_up() } else { rounded }
}

impl Bounds {
    const EMPTY: Bounds = Bounds { lo: [f32::INFINITY; 3], hi: [f32::NEG_INFINITY; 3] };

    fn is_empty(&self) -> bool {
        self.lo[0] > self.hi[0]
    }

    fn add_point(&mut self, point: [f64; 3]) {
        self.add(&Bounds::around(point));
    }

    /// The least box holding `point`: rounded once, then added to every
    /// box on an insertion's way down (rounding is most of adding a point).
    fn around(point: [f64; 3]) -> Bounds {
        Bounds { lo: point.map(round_down), hi: point.map(round_up) }
    }

    fn add(&mut self, other: &Bounds) {
        for axis in 0..3 {
            self.lo[axis] = self.lo[axis].min(other.lo[axis]);
            self.hi[axis] = self.hi[axis].max(other.hi[axis]);
        }
    }

    fn contains(&self, point: [f64; 3]) -> bool {
        (0..3).all(|axis| f64::from(self.lo[axis]) <= point[axis] && point[axis] <= f64::from(self.hi[axis]))
    }

    /// The sum of the edges: what insertion keeps small (points lie on a
    /// sphere, so a box's volume says little).
    fn margin(&self) -> f64 {
        if self.is_empty() {
            return 0.0;
        }
        (0..3).map(|axis| f64::from(self.hi[axis]) - f64::from(self.lo[axis])).sum()
    }

    /// How much the margin grows to take `other` in.
    fn margin_growth(&self, other: &Bounds) -> f64 {
        if self.is_empty() {
            return other.margin();
        }
        (0..3)
            .map(|axis| {
                let below = f64::from(self.lo[axis]) - f64::from(self.lo[axis].min(other.lo[axis]));
                let above = f64::from(self.hi[axis].max(other.hi[axis])) - f64::from(self.hi[axis]);
                below + above
            })
            .sum()
    }

    /// The squared distance from `point` to the nearest point of the box:
    /// never more than [`distance_2`] to anything inside it (clamping and
    /// subtracting are monotonic in floating point too).
    fn distance_2(&self, point: [f64; 3]) -> f64 {
        let gap = |axis: usize| point[axis].clamp(f64::from(self.lo[axis]), f64::from(self.hi[axis])) - point[axis];
        let (dx, dy, dz) = (gap(0), gap(1), gap(2));
        dx * dx + dy * dy + dz * dz
    }

    fn centre(&self, axis: usize) -> f64 {
        (f64::from(self.lo[axis]) + f64::from(self.hi[axis])) / 2.0
    }

    fn widest_axis(&self) -> usize {
        let extent = |axis: usize| self.hi[axis] - self.lo[axis];
        (0..3).max_by(|a, b| extent(*a).total_cmp(&extent(*b))).unwrap_or(0)
    }
}

/// The squared chord between two unit vectors, as `rstar` computes it for
/// `[f64; 3]` points.
pub(super) fn distance_2(a: [f64; 3], b: [f64; 3]) -> f64 {
    let dx = a[0] - b[0];
    let dy = a[1] - b[1];
    let dz = a[2] - b[2];
    dx * dx + dy * dy + dz * dz
}

/// What the free people below a node have between them.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Summary {
    any_free: bool,
    /// The union of the free people's skill bits.
    free_skills: u64,
}

impl Summary {
    fn of(entry: &Entry) -> Summary {
        Summary { any_free: entry.data.free, free_skills: if entry.data.free { entry.data.skills } else { 0 } }
    }

    fn add(&mut self, other: Summary) {
        self.any_free |= other.any_free;
        self.free_skills |= other.free_skills;
    }
}

#[derive(Clone, Copy, Debug)]
pub(super) struct Entry {
    pub(super) point: [f64; 3],
    pub(super) data: Indexed,
}

/// A child of an inner node, with its box and summary kept beside its
/// number: choosing where to insert and walking outward read the children
/// of a node from one place, not from every child's own node.
#[derive(Clone, Copy, Debug)]
struct Child {
    bounds: Bounds,
    summary: Summary,
    node: u32,
}

#[derive(Debug)]
struct Node {
    parent: u32,
    /// A copy of this node's box as its parent's record of it holds it, so
    /// that a move checks the leaf it is in without reading the parent
    /// (another cache miss) and searching its children for the record.
    bounds: Bounds,
    /// Inner nodes: their children.
    children: Vec<Child>,
    /// Leaves: their entries.
    entries: Vec<Entry>,
    leaf: bool,
}

impl Node {
    fn new(leaf: bool, parent: u32) -> Node {
        // One more than the most a node holds: the one that splits it.
        let (children, entries) =
            if leaf { (Vec::new(), Vec::with_capacity(NODE_MAX + 1)) } else { (Vec::with_capacity(NODE_MAX + 1), Vec::new()) };
        Node { parent, bounds: Bounds::EMPTY, children, entries, leaf }
    }
}

/// Where an entry is: its leaf and its position among the leaf's entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Place {
    pub(super) leaf: u32,
    pub(super) at: u16,
}

/// Which people a walk yields: those holding every bit of `skills`, and
/// only the free ones when `free` (the summaries prune the rest).
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Filter {
    pub(super) skills: u64,
    pub(super) free: bool,
}

impl Filter {
    fn passes(&self, data: &Indexed) -> bool {
        data.skills & self.skills == self.skills && (!self.free || data.free)
    }

    /// Whether someone below a node with `summary` may pass.
    fn may_pass(&self, summary: Summary) -> bool {
        !self.free || (summary.any_free && summary.free_skills & self.skills == self.skills)
    }
}

/// One R-tree: nodes in an arena, numbered; freed numbers are reused.
#[derive(Debug)]
pub(super) struct Tree {
    nodes: Vec<Node>,
    /// The root, with its box and summary.
    root: Child,
    unused: Vec<u32>,
    len: usize,
}

impl Default for Tree {
    fn default() -> Tree {
        Tree {
            nodes: vec![Node::new(true, NONE)],
            root: Child { bounds: Bounds::EMPTY, summary: Summary::default(), node: 0 },
            unused: Vec::new(),
            len: 0,
        }
    }
}

impl Tree {
    pub(super) fn len(&self) -> usize {
        self.len
    }

    pub(super) fn entry(&self, place: Place) -> &Entry {
        &self.nodes[place.leaf as usize].entries[place.at as usize]
    }

    /// The record of `node` (its box and summary): in its parent, or the root's.
    fn record(&self, node: u32) -> &Child {
        let parent = self.nodes[node as usize].parent;
        if parent == NONE {
            return &self.root;
        }
        let found = self.nodes[parent as usize].children.iter().find(|child| child.node == node);
        found.expect("a node is among its parent's children")
    }

    fn record_mut(&mut self, node: u32) -> &mut Child {
        let parent = self.nodes[node as usize].parent;
        if parent == NONE {
            return &mut self.root;
        }
        let found = self.nodes[parent as usize].children.iter_mut().find(|child| child.node == node);
        found.expect("a node is among its parent's children")
    }

    /// Sets the box and summary of `node`: in its record and its own copy.
    fn set_record(&mut self, node: u32, bounds: Bounds, summary: Summary) {
        let record = self.record_mut(node);
        record.bounds = bounds;
        record.summary = summary;
        self.nodes[node as usize].bounds = bounds;
    }

    /// Adds `entry`; `placed` is told where every entry that moved now is
    /// (the new one among them).
    pub(super) fn insert(&mut self, entry: Entry, placed: &mut impl FnMut(u32, Place)) {
        self.len += 1;
        let summary = Summary::of(&entry);
        let point_box = Bounds::around(entry.point);
        self.root.bounds.add(&point_box);
        self.root.summary.add(summary);
        let mut node = self.root.node;
        loop {
            let current = &mut self.nodes[node as usize];
            current.bounds.add(&point_box);
            if current.leaf {
                break;
            }
            let children = &mut current.children;
            let chosen = choose_child(children, &point_box);
            let child = &mut children[chosen];
            child.bounds.add(&point_box);
            child.summary.add(summary);
            node = child.node;
        }
        let leaf = &mut self.nodes[node as usize].entries;
        leaf.push(entry);
        placed(entry.data.slot, Place { leaf: node, at: (leaf.len() - 1) as u16 });
        if leaf.len() > NODE_MAX {
            self.split(node, placed);
        }
    }

    fn new_node(&mut self, leaf: bool, parent: u32) -> u32 {
        match self.unused.pop() {
            Some(number) => {
                // Reused with the vectors it had (emptied when it was
                // dropped): a split after a removal allocates nothing.
                let reused = &mut self.nodes[number as usize];
                reused.parent = parent;
                reused.bounds = Bounds::EMPTY;
                reused.leaf = leaf;
                if leaf {
                    reused.entries.reserve(NODE_MAX + 1);
                } else {
                    reused.children.reserve(NODE_MAX + 1);
                }
                number
            }
            None => {
                self.nodes.push(Node::new(leaf, parent));
                (self.nodes.len() - 1) as u32
            }
        }
    }

    /// Splits an overfull `node` in two halves along the widest axis of its
    /// box, then its parent if that overflows in turn.
    fn split(&mut self, node: u32, placed: &mut impl FnMut(u32, Place)) {
        let parent = self.nodes[node as usize].parent;
        let leaf = self.nodes[node as usize].leaf;
        let sibling = self.new_node(leaf, parent);
        let axis = self.nodes[node as usize].bounds.widest_axis();
        if leaf {
            // The sibling's vector is taken out and put back, so that the
            // upper half moves across without a vector in between.
            let mut upper = std::mem::take(&mut self.nodes[sibling as usize].entries);
            let entries = &mut self.nodes[node as usize].entries;
            entries.sort_unstable_by(|a, b| a.point[axis].total_cmp(&b.point[axis]));
            upper.extend(entries.drain(entries.len() / 2..));
            self.nodes[sibling as usize].entries = upper;
            for half in [node, sibling] {
                for (at, entry) in self.nodes[half as usize].entries.iter().enumerate() {
                    placed(entry.data.slot, Place { leaf: half, at: at as u16 });
                }
            }
        } else {
            let mut upper = std::mem::take(&mut self.nodes[sibling as usize].children);
            let children = &mut self.nodes[node as usize].children;
            children.sort_unstable_by(|a, b| a.bounds.centre(axis).total_cmp(&b.bounds.centre(axis)));
            upper.extend(children.drain(children.len() / 2..));
            for child in &upper {
                self.nodes[child.node as usize].parent = sibling;
            }
            self.nodes[sibling as usize].children = upper;
        }
        let (node_bounds, node_summary) = self.computed(node);
        let (sibling_bounds, sibling_summary) = self.computed(sibling);
        let sibling_record = Child { bounds: sibling_bounds, summary: sibling_summary, node: sibling };
        if parent == NONE {
            let root = self.new_node(false, NONE);
            let node_record = Child { bounds: node_bounds, summary: node_summary, node };
            self.nodes[root as usize].children.extend([node_record, sibling_record]);
            self.nodes[node as usize].parent = root;
            self.nodes[sibling as usize].parent = root;
            self.nodes[node as usize].bounds = node_bounds;
            self.nodes[sibling as usize].bounds = sibling_bounds;
            let (bounds, summary) = self.computed(root);
            self.root = Child { bounds, summary, node: root };
            self.nodes[root as usize].bounds = bounds;
            return;
        }
        self.set_record(node, node_bounds, node_summary);
        self.nodes[sibling as usize].bounds = sibling_bounds;
        let siblings = &mut self.nodes[parent as usize].children;
        siblings.push(sibling_record);
        if siblings.len() > NODE_MAX {
            self.split(parent, placed);
        }
    }

    /// The box and summary of what `node` holds.
    fn computed(&self, node: u32) -> (Bounds, Summary) {
        let mut bounds = Bounds::EMPTY;
        let mut summary = Summary::default();
        let current = &self.nodes[node as usize];
        if current.leaf {
            for entry in &current.entries {
                bounds.add_point(entry.point);
                summary.add(Summary::of(entry));
            }
        } else {
            for child in &current.children {
                bounds.add(&child.bounds);
                summary.add(child.summary);
            }
        }
        (bounds, summary)
    }

    /// Sets the box and summary of `node` and its ancestors from what they
    /// hold, stopping where nothing changed.
    fn recompute_upwards(&mut self, mut node: u32) {
        while node != NONE {
            let (bounds, summary) = self.computed(node);
            let record = self.record(node);
            if record.summary == summary && record.bounds.lo == bounds.lo && record.bounds.hi == bounds.hi {
                return;
            }
            self.set_record(node, bounds, summary);
            node = self.nodes[node as usize].parent;
        }
    }

    /// Removes the entry at `place`; `placed` is told where the entry that
    /// took its position now is.
    pub(super) fn remove(&mut self, place: Place, placed: &mut impl FnMut(u32, Place)) -> Entry {
        self.len -= 1;
        let leaf = place.leaf;
        let entries = &mut self.nodes[leaf as usize].entries;
        let removed = entries.swap_remove(place.at as usize);
        if let Some(moved) = entries.get(place.at as usize) {
            placed(moved.data.slot, place);
        }
        if entries.is_empty() && leaf != self.root.node {
            self.drop_node(leaf);
        } else {
            self.recompute_upwards(leaf);
        }
        removed
    }

    /// Takes an empty `node` out of its parent (and the parent out of its
    /// own if that leaves it empty), keeping every box tight.
    fn drop_node(&mut self, node: u32) {
        let parent = self.nodes[node as usize].parent;
        self.unused.push(node);
        let dropped = &mut self.nodes[node as usize];
        dropped.children.clear();
        dropped.entries.clear();
        let siblings = &mut self.nodes[parent as usize].children;
        siblings.retain(|child| child.node != node);
        if siblings.is_empty() && parent != self.root.node {
            self.drop_node(parent);
            return;
        }
        if siblings.is_empty() {
            // The root lost its last child: it becomes an empty leaf again.
            self.nodes[parent as usize] = Node::new(true, NONE);
        }
        self.recompute_upwards(parent);
    }

    /// Moves the entry at `place` to `point` in place when the point stays
    /// inside its leaf's box (which then still bounds the leaf); `false`
    /// when it does not, and nothing changed.
    pub(super) fn move_within_leaf(&mut self, place: Place, point: [f64; 3]) -> bool {
        if !self.nodes[place.leaf as usize].bounds.contains(point) {
            return false;
        }
        self.nodes[place.leaf as usize].entries[place.at as usize].point = point;
        true
    }

    /// Changes the copies of the entry at `place` and the summaries above it.
    pub(super) fn update(&mut self, place: Place, change: impl FnOnce(&mut Indexed)) -> (Indexed, Indexed) {
        let entry = &mut self.nodes[place.leaf as usize].entries[place.at as usize];
        let before = entry.data;
        change(&mut entry.data);
        let after = entry.data;
        if Summary::of(&Entry { point: entry.point, data: before }) != Summary::of(entry) {
            self.recompute_upwards(place.leaf);
        }
        (before, after)
    }

    /// The entries passing `filter` in order of distance from `query`.
    pub(super) fn nearest(&self, query: [f64; 3], filter: Filter) -> Nearest<'_> {
        Nearest::through(&[(self, 1.0)], query, filter, Within::EVERYWHERE)
    }

    /// Checks the tree's own invariants (boxes, summaries, parents, count)
    /// and that `place_of` knows where every entry is.
    pub(super) fn check(&self, place_of: impl Fn(u32) -> Option<Place>) -> Result<(), String> {
        let mut count = 0;
        let mut stack = vec![self.root.node];
        while let Some(node) = stack.pop() {
            let current = &self.nodes[node as usize];
            if current.leaf {
                for (at, entry) in current.entries.iter().enumerate() {
                    if place_of(entry.data.slot) != Some(Place { leaf: node, at: at as u16 }) {
                        return Err(format!("the index does not know where entry {} is", entry.data.slot));
                    }
                }
                count += current.entries.len();
            } else {
                for child in &current.children {
                    if self.nodes[child.node as usize].parent != node {
                        return Err(format!("node {} does not name its parent {node}", child.node));
                    }
                    stack.push(child.node);
                }
            }
            // A box may be looser than its contents after a move in place,
            // never tighter; a summary is exact.
            let (bounds, summary) = self.computed(node);
            let record = self.record(node);
            let holds = bounds.is_empty()
                || (0..3).all(|axis| record.bounds.lo[axis] <= bounds.lo[axis] && bounds.hi[axis] <= record.bounds.hi[axis]);
            if !holds || record.summary != summary {
                return Err(format!("node {node}'s box or summary does not follow what it holds"));
            }
            let copy = &current.bounds;
            if copy.lo != record.bounds.lo || copy.hi != record.bounds.hi {
                return Err(format!("node {node}'s own box is not its record's"));
            }
        }
        if count != self.len {
            return Err(format!("the tree counts {} entries and holds {count}", self.len));
        }
        Ok(())
    }
}

/// Which of `children` grows least to take `point_box`, the smaller on a tie.
fn choose_child(children: &[Child], point_box: &Bounds) -> usize {
    let mut best = (f64::INFINITY, f64::INFINITY, 0);
    for (index, child) in children.iter().enumerate() {
        let margin = child.bounds.margin();
        let growth = child.bounds.margin_growth(point_box);
        if (growth, margin) < (best.0, best.1) {
            best = (growth, margin, index);
        }
    }
    best.2
}

/// A node (`at == u16::MAX`) or an entry waiting in a walk, the least
/// key first: the squared chord to the query times its tree's weight.
#[derive(Clone, Copy, Debug)]
struct Queued {
    key: f64,
    distance_2: f64,
    node: u32,
    at: u16,
    /// Which of the walk's trees.
    lane: u8,
}

impl PartialEq for Queued {
    fn eq(&self, other: &Queued) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Queued {}

impl PartialOrd for Queued {
    fn partial_cmp(&self, other: &Queued) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Reversed, so that `BinaryHeap` (a max-heap) pops the least key; at the
/// same key an entry comes before a node.
impl Ord for Queued {
    fn cmp(&self, other: &Queued) -> Ordering {
        other.key.total_cmp(&self.key).then_with(|| (self.at != u16::MAX).cmp(&(other.at != u16::MAX)))
    }
}

/// How far a walk goes: nothing whose squared chord, or whose key, is
/// beyond these (inclusive bounds) is queued.
#[derive(Clone, Copy, Debug)]
pub(super) struct Within {
    pub(super) distance_2: f64,
    pub(super) key: f64,
}

impl Within {
    pub(super) const EVERYWHERE: Within = Within { distance_2: f64::INFINITY, key: f64::INFINITY };
}

/// The most trees one walk goes through (one per travel mode).
const LANES_MAX: usize = 3;

/// A best-first walk through one or more trees at once: the entries
/// passing the filter by their key (squared chord times their tree's
/// weight), least first, with the squared chord and the tree. With one
/// tree (weight 1) that is nearest first; with a tree per travel mode
/// weighted by the inverse square of its speed, soonest to arrive first.
pub(super) struct Nearest<'a> {
    trees: [&'a Tree; LANES_MAX],
    weights: [f64; LANES_MAX],
    query: [f64; 3],
    filter: Filter,
    within: Within,
    queue: BinaryHeap<Queued>,
}

impl<'a> Nearest<'a> {
    /// A walk through `trees` (at most three), each with its weight.
    pub(super) fn through(trees: &[(&'a Tree, f64)], query: [f64; 3], filter: Filter, within: Within) -> Nearest<'a> {
        debug_assert!(!trees.is_empty() && trees.len() <= LANES_MAX, "a walk goes through one to three trees");
        let mut walk = Nearest {
            trees: [trees[0].0; LANES_MAX],
            weights: [1.0; LANES_MAX],
            query,
            filter,
            within,
            queue: BinaryHeap::with_capacity(64 * trees.len()),
        };
        for (lane, (tree, weight)) in trees.iter().enumerate().take(LANES_MAX) {
            walk.trees[lane] = tree;
            walk.weights[lane] = *weight;
            if !tree.root.bounds.is_empty() && filter.may_pass(tree.root.summary) {
                walk.push(tree.root.bounds.distance_2(query), tree.root.node, u16::MAX, lane as u8);
            }
        }
        walk
    }

    fn push(&mut self, distance_2: f64, node: u32, at: u16, lane: u8) {
        let key = distance_2 * self.weights[lane as usize];
        if distance_2 <= self.within.distance_2 && key <= self.within.key {
            self.queue.push(Queued { key, distance_2, node, at, lane });
        }
    }
}

/// An entry a walk found: the person's copies, the squared chord to the
/// query, the key the walk ordered it by, and which tree it is in.
pub(super) struct Found<'a> {
    pub(super) data: &'a Indexed,
    pub(super) distance_2: f64,
    pub(super) key: f64,
    pub(super) lane: usize,
}

impl<'a> Iterator for Nearest<'a> {
    type Item = Found<'a>;

    fn next(&mut self) -> Option<Found<'a>> {
        while let Some(next) = self.queue.pop() {
            let tree: &'a Tree = self.trees[next.lane as usize];
            let node = &tree.nodes[next.node as usize];
            if next.at != u16::MAX {
                let data = &node.entries[next.at as usize].data;
                return Some(Found { data, distance_2: next.distance_2, key: next.key, lane: next.lane as usize });
            }
            if node.leaf {
                for (at, entry) in node.entries.iter().enumerate() {
                    if self.filter.passes(&entry.data) {
                        self.push(distance_2(entry.point, self.query), next.node, at as u16, next.lane);
                    }
                }
            } else {
                for child in &node.children {
                    if self.filter.may_pass(child.summary) {
                        self.push(child.bounds.distance_2(self.query), child.node, u16::MAX, next.lane);
                    }
                }
            }
        }
        None
    }
}
