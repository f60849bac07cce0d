//! Joins. Stream–table: each event with the table's value for a key taken from the
//! event — the table co-partitioned with the stream (the event's partition is looked
//! up) or a global table (any key). Table–table: the entries of two tables on equal keys.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{GlobalTable, Table, TableError};
use crate::stream::event::Event;
use crate::stream::{EventStream, Next, Port, StreamError};

/// `stream.join(&table, key_fn)` for every stream of events.
pub trait JoinTable<V, K>: EventStream<Item = Event<V, K>> {
    /// Each event with `table`'s value at `key(event)` (`None` when the table has
    /// none: a left join; `.filter(|(_, v)| v.is_some())` makes it inner).
    fn join<TK, TV, F>(self, table: &Table<TK, TV>, key: F) -> StreamTableJoin<Self, TK, TV, F>
    where
        TK: Serialize + DeserializeOwned + Send + Sync + 'static,
        TV: Serialize + DeserializeOwned + Send + Sync + 'static,
        F: FnMut(&Event<V, K>) -> TK + Send + 'static,
    {
        StreamTableJoin {
            inner: self,
            table: table.clone(),
            key,
        }
    }
}

impl<S, V, K> JoinTable<V, K> for S where S: EventStream<Item = Event<V, K>> {}

pub struct StreamTableJoin<S, TK, TV, F> {
    inner: S,
    table: Table<TK, TV>,
    key: F,
}

impl<S, V, K, TK, TV, F> EventStream for StreamTableJoin<S, TK, TV, F>
where
    S: EventStream<Item = Event<V, K>>,
    V: Send + 'static,
    K: Send + 'static,
    TK: Serialize + DeserializeOwned + Send + Sync + 'static,
    TV: Serialize + DeserializeOwned + Send + Sync + 'static,
    F: FnMut(&Event<V, K>) -> TK + Send + 'static,
{
    type Item = (Event<V, K>, Option<TV>);

    async fn next(&mut self) -> Next<(Event<V, K>, Option<TV>)> {
        let Some(event) = self.inner.next().await? else {
            return Ok(None);
        };
        let key = (self.key)(&event);
        let value = self.table.get(&key).await.map_err(|e| {
            StreamError::Operator(format!("join with table {}: {e}", self.table.name()))
        })?;
        Ok(Some((event, value)))
    }

    fn port(&self) -> &Arc<Port> {
        self.inner.port()
    }
}

/// The entries of `left` and `right` on equal keys (inner join), in key order.
pub fn inner_join<K: Ord, A, B>(left: Vec<(K, A)>, right: Vec<(K, B)>) -> Vec<(K, A, B)> {
    let mut right: BTreeMap<K, B> = right.into_iter().collect();
    let mut out: Vec<(K, A, B)> = left
        .into_iter()
        .filter_map(|(k, a)| right.remove(&k).map(|b| (k, a, b)))
        .collect();
    out.sort_by(|x, y| x.0.cmp(&y.0));
    out
}

/// Every entry of `left` with `right`'s value on its key, if any (left join).
pub fn left_join<K: Ord, A, B>(left: Vec<(K, A)>, right: Vec<(K, B)>) -> Vec<(K, A, Option<B>)> {
    let mut right: BTreeMap<K, B> = right.into_iter().collect();
    let mut out: Vec<(K, A, Option<B>)> = left
        .into_iter()
        .map(|(k, a)| {
            let b = right.remove(&k);
            (k, a, b)
        })
        .collect();
    out.sort_by(|x, y| x.0.cmp(&y.0));
    out
}

impl<K, V> GlobalTable<K, V>
where
    K: Serialize + DeserializeOwned + Ord + 'static,
    V: Serialize + DeserializeOwned + 'static,
{
    /// This table's entries with `other`'s on equal keys (inner join).
    pub async fn join<W>(&self, other: &GlobalTable<K, W>) -> Result<Vec<(K, V, W)>, TableError>
    where
        W: Serialize + DeserializeOwned + 'static,
    {
        Ok(inner_join(self.entries().await?, other.entries().await?))
    }

    /// Every entry of this table with `other`'s value on its key, if any (left join).
    pub async fn left_join<W>(
        &self,
        other: &GlobalTable<K, W>,
    ) -> Result<Vec<(K, V, Option<W>)>, TableError>
    where
        W: Serialize + DeserializeOwned + 'static,
    {
        Ok(left_join(self.entries().await?, other.entries().await?))
    }
}

impl<K, V> Table<K, V>
where
    K: Serialize + DeserializeOwned + Ord + 'static,
    V: Serialize + DeserializeOwned + 'static,
{
    /// The entries of the partition in hand with `other`'s on equal keys (inner join;
    /// two tables of one agent are co-partitioned, so a key is in the same partition of
    /// each).
    pub async fn join<W>(&self, other: &Table<K, W>) -> Result<Vec<(K, V, W)>, TableError>
    where
        W: Serialize + DeserializeOwned + 'static,
    {
        Ok(inner_join(self.entries().await?, other.entries().await?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inner_and_left_joins_pair_entries_on_equal_keys() {
        let a = vec![(1, "a1"), (2, "a2"), (3, "a3")];
        let b = vec![(3, 30), (1, 10), (4, 40)];
        assert_eq!(
            inner_join(a.clone(), b.clone()),
            vec![(1, "a1", 10), (3, "a3", 30)]
        );
        assert_eq!(
            left_join(a, b),
            vec![(1, "a1", Some(10)), (2, "a2", None), (3, "a3", Some(30))]
        );
    }
}
