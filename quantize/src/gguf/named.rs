//! Items kept in file order with a lookup by name.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

pub(super) struct Named<T> {
    items: Vec<T>,
    index: HashMap<String, usize>,
}

impl<T> Named<T> {
    /// `capacity` must already be bounded by the file's size.
    pub(super) fn with_capacity(capacity: usize) -> Named<T> {
        Named { items: Vec::with_capacity(capacity), index: HashMap::with_capacity(capacity) }
    }

    /// Appends `item` under `name`, or hands the name back when it is taken.
    pub(super) fn push(&mut self, name: String, item: T) -> Result<(), String> {
        match self.index.entry(name) {
            Entry::Occupied(taken) => Err(taken.key().clone()),
            Entry::Vacant(free) => {
                free.insert(self.items.len());
                self.items.push(item);
                Ok(())
            }
        }
    }

    pub(super) fn get(&self, name: &str) -> Option<&T> {
        self.index.get(name).map(|&i| &self.items[i])
    }

    pub(super) fn items(&self) -> &[T] {
        &self.items
    }
}
