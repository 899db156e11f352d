//! [`EntityStore`]: the agents, teams, tools, data sets and people policies
//! talk about, with their attributes and parents, checked against the schema.
//!
//! Cedar computes the transitive closure of the parent relation when the
//! store is built or updated, so "is `x` in `y`" is a hash lookup on the
//! decision path. Updates are atomic: a rejected update leaves the store as
//! it was.

use cedar_policy::{Entities, Entity, EntityUid};

use crate::schema::Schema;

/// Why entity data was rejected.
#[derive(Debug, thiserror::Error)]
pub enum EntityError {
    /// An entity does not conform to the schema, is duplicated, or the JSON
    /// is malformed.
    #[error("entity data rejected: {0}")]
    Rejected(#[source] Box<cedar_policy::entities_errors::EntitiesError>),
}

impl From<cedar_policy::entities_errors::EntitiesError> for EntityError {
    fn from(err: cedar_policy::entities_errors::EntitiesError) -> Self {
        Self::Rejected(Box::new(err))
    }
}

/// Entities and their (transitive) parents, including the schema's action
/// hierarchy. Cloning copies the map of shared entities.
#[derive(Debug, Clone)]
pub struct EntityStore {
    entities: Entities,
    schema: Schema,
}

impl EntityStore {
    /// A store of `entities`, each checked against `schema`; the schema's
    /// action entities are added.
    pub fn new(
        schema: &Schema,
        entities: impl IntoIterator<Item = Entity>,
    ) -> Result<Self, EntityError> {
        Ok(Self {
            entities: Entities::from_entities(entities, Some(schema.cedar()))?,
            schema: schema.clone(),
        })
    }

    /// A store from Cedar's entity JSON format (an array of
    /// `{"uid", "attrs", "parents"}` objects).
    pub fn from_json_str(schema: &Schema, json: &str) -> Result<Self, EntityError> {
        Ok(Self {
            entities: Entities::from_json_str(json, Some(schema.cedar()))?,
            schema: schema.clone(),
        })
    }

    /// Adds or replaces `entities` (by uid).
    pub fn upsert(
        &mut self,
        entities: impl IntoIterator<Item = Entity>,
    ) -> Result<(), EntityError> {
        let updated = self
            .entities
            .clone()
            .upsert_entities(entities, Some(self.schema.cedar()))?;
        self.entities = updated;
        Ok(())
    }

    /// Removes the entities with these uids; unknown uids are ignored.
    pub fn remove(&mut self, uids: impl IntoIterator<Item = EntityUid>) -> Result<(), EntityError> {
        let present: Vec<EntityUid> = uids
            .into_iter()
            .filter(|uid| self.entities.get(uid).is_some())
            .collect();
        let updated = self.entities.clone().remove_entities(present)?;
        self.entities = updated;
        Ok(())
    }

    /// Number of entities, action entities included.
    pub fn len(&self) -> usize {
        self.entities.len()
    }

    /// True if the store holds nothing (not even actions).
    pub fn is_empty(&self) -> bool {
        self.entities.is_empty()
    }

    /// The entity with this uid.
    pub fn get(&self, uid: &EntityUid) -> Option<&Entity> {
        self.entities.get(uid)
    }

    /// Cedar's view of the store.
    pub fn cedar(&self) -> &Entities {
        &self.entities
    }

    /// Same as Cedar's `child in ancestor`: equal, or a transitive parent.
    pub fn is_in(&self, child: &EntityUid, ancestor: &EntityUid) -> bool {
        // Cedar's `is_ancestor_of` answers only the parent part for entities
        // in the store.
        child == ancestor || self.entities.is_ancestor_of(ancestor, child)
    }

    /// Strict ancestors of `uid` (none if it is not in the store).
    pub fn ancestors<'a>(&'a self, uid: &EntityUid) -> impl Iterator<Item = &'a EntityUid> {
        self.entities.ancestors(uid).into_iter().flatten()
    }

    pub(crate) fn schema_digest(&self) -> &[u8; 32] {
        self.schema.digest()
    }
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing,
        reason = "tests"
    )]

    use std::str::FromStr;

    use super::*;

    fn uid(s: &str) -> EntityUid {
        EntityUid::from_str(s).unwrap()
    }

    const AGENT: &str = r#"[
        {"uid": {"type": "Team", "id": "ops"}, "attrs": {}, "parents": []},
        {"uid": {"type": "Agent", "id": "a"}, "attrs": {"team": "ops", "risk_tier": 1, "labels": []},
         "parents": [{"type": "Team", "id": "ops"}]}
    ]"#;

    #[test]
    fn json_entities_are_checked_and_closed_over_parents() {
        let schema = Schema::ward().unwrap();
        let store = EntityStore::from_json_str(&schema, AGENT).unwrap();
        assert!(store.is_in(&uid(r#"Agent::"a""#), &uid(r#"Team::"ops""#)));
        assert!(store.is_in(&uid(r#"Action::"GET""#), &uid(r#"Action::"http""#)));
        assert!(store.is_in(&uid(r#"Agent::"a""#), &uid(r#"Agent::"a""#)));
        assert!(store.is_in(&uid(r#"Agent::"zz""#), &uid(r#"Agent::"zz""#)));
        assert!(!store.is_in(&uid(r#"Team::"ops""#), &uid(r#"Agent::"a""#)));
        assert_eq!(store.ancestors(&uid(r#"Agent::"a""#)).count(), 1);
        let wrong = AGENT.replace("\"risk_tier\": 1", "\"risk_tier\": \"high\"");
        assert!(EntityStore::from_json_str(&schema, &wrong).is_err());
    }

    #[test]
    fn updates_are_atomic() {
        let schema = Schema::ward().unwrap();
        let mut store = EntityStore::from_json_str(&schema, AGENT).unwrap();
        let before = store.len();
        // An Agent without its required attributes is rejected; nothing changes.
        let bad = Entity::new_no_attrs(uid(r#"Agent::"b""#), Default::default());
        assert!(store.upsert([bad]).is_err());
        assert_eq!(store.len(), before);
        store
            .upsert([Entity::new_no_attrs(
                uid(r#"Team::"dev""#),
                Default::default(),
            )])
            .unwrap();
        assert_eq!(store.len(), before + 1);
        store
            .remove([uid(r#"Team::"dev""#), uid(r#"Team::"unknown""#)])
            .unwrap();
        assert_eq!(store.len(), before);
        assert!(store.get(&uid(r#"Team::"dev""#)).is_none());
    }
}
