//! Compact storage for the subsets behind front points.
//!
//! A subset is a chain of links `(parent, pick)`: the subset of a node is its parent's subset
//! plus one pick (a flat option id). Extending a subset by one option is one push, so a merge
//! step costs `O(1)` per new point however large the subsets are, and points that share a
//! history share its links. Subsets are materialised only when asked for, by walking the
//! chain to the root.
//!
//! Merging leaves behind links that no live point refers to any more; [`Arena::compact`]
//! drops them (mark from the live points, then slide the survivors down). A parent is always
//! older than its children, so compaction keeps that order and can renumber in one pass.

use crate::error::KnapsackError;

/// The empty subset: the parent of every chain's first link.
pub(crate) const ROOT: u32 = u32::MAX;

/// Largest number of links; indices must stay below [`ROOT`].
const MAX_LINKS: usize = u32::MAX as usize - 1;

#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Arena {
    parent: Vec<u32>,
    pick: Vec<u32>,
}

impl Arena {
    pub fn len(&self) -> usize {
        self.parent.len()
    }

    /// Adds the subset `parent + pick` and returns its node.
    #[inline]
    pub fn push(&mut self, parent: u32, pick: u32) -> Result<u32, KnapsackError> {
        let node = self.parent.len();
        if node >= MAX_LINKS {
            return Err(KnapsackError::TooLarge {
                what: format!("more than {MAX_LINKS} subset links"),
            });
        }
        self.parent.push(parent);
        self.pick.push(pick);
        Ok(node as u32)
    }

    /// Makes room for `links` more links, failing if they would exceed the size limit; the
    /// next `links` pushes may then use [`Arena::push_reserved`].
    pub fn reserve(&mut self, links: usize) -> Result<(), KnapsackError> {
        if self.parent.len().saturating_add(links) > MAX_LINKS {
            return Err(KnapsackError::TooLarge {
                what: format!("more than {MAX_LINKS} subset links"),
            });
        }
        self.parent.reserve(links);
        self.pick.reserve(links);
        Ok(())
    }

    /// [`Arena::push`] after a [`Arena::reserve`] that covers it.
    #[inline(always)]
    pub fn push_reserved(&mut self, parent: u32, pick: u32) -> u32 {
        debug_assert!(self.parent.len() < MAX_LINKS);
        let node = self.parent.len() as u32;
        self.parent.push(parent);
        self.pick.push(pick);
        node
    }

    /// The picks of `node`'s subset, most recent first.
    pub fn picks(&self, node: u32) -> Picks<'_> {
        Picks { arena: self, node }
    }

    /// Drops every link not reachable from `roots` and renumbers `roots` in place.
    pub fn compact(&mut self, roots: &mut [u32]) {
        const DEAD: u32 = u32::MAX;
        let n = self.parent.len();
        let mut new_index = vec![DEAD; n];
        // Mark: walk each chain up until it meets a marked link.
        for &root in roots.iter() {
            let mut node = root;
            while node != ROOT && new_index[node as usize] == DEAD {
                new_index[node as usize] = 0;
                node = self.parent[node as usize];
            }
        }
        // Sweep: parents precede children, so their new index is known when a child moves.
        let mut next = 0usize;
        for old in 0..n {
            if new_index[old] == DEAD {
                continue;
            }
            let parent = self.parent[old];
            self.parent[next] = if parent == ROOT {
                ROOT
            } else {
                new_index[parent as usize]
            };
            self.pick[next] = self.pick[old];
            new_index[old] = next as u32;
            next += 1;
        }
        self.parent.truncate(next);
        self.pick.truncate(next);
        self.parent.shrink_to_fit();
        self.pick.shrink_to_fit();
        for root in roots.iter_mut() {
            if *root != ROOT {
                *root = new_index[*root as usize];
            }
        }
    }
}

/// Iterator over the picks of one subset (see [`Arena::picks`]).
pub(crate) struct Picks<'a> {
    arena: &'a Arena,
    node: u32,
}

impl Iterator for Picks<'_> {
    type Item = u32;

    fn next(&mut self) -> Option<u32> {
        if self.node == ROOT {
            return None;
        }
        let i = self.node as usize;
        self.node = self.arena.parent[i];
        Some(self.arena.pick[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chains_share_prefixes_and_survive_compaction() {
        let mut arena = Arena::default();
        let a = arena.push(ROOT, 7).unwrap();
        let dead = arena.push(a, 1).unwrap();
        let b = arena.push(a, 8).unwrap();
        let c = arena.push(b, 9).unwrap();
        let _dead2 = arena.push(dead, 2).unwrap();
        assert_eq!(arena.picks(c).collect::<Vec<_>>(), vec![9, 8, 7]);
        let mut roots = [c, a, ROOT];
        arena.compact(&mut roots);
        assert_eq!(arena.len(), 3);
        assert_eq!(arena.picks(roots[0]).collect::<Vec<_>>(), vec![9, 8, 7]);
        assert_eq!(arena.picks(roots[1]).collect::<Vec<_>>(), vec![7]);
        assert_eq!(roots[2], ROOT);
        assert_eq!(arena.picks(ROOT).count(), 0);
    }
}
