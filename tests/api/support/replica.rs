//! A device's replica of the sync feed, and what it must equal: shared by the API suite's sync
//! tests and the reliability tests (two servers), which fetch pages their own way.

use std::collections::BTreeMap;

use serde_json::Value;

/// Records by kind, then by id.
pub type View = BTreeMap<&'static str, BTreeMap<String, Value>>;

/// What a device holds: records by (entity, id).
#[derive(Default, Debug, Clone, PartialEq)]
pub struct Replica {
    pub records: BTreeMap<(String, String), Value>,
}

impl Replica {
    /// Applies one change of the feed, as docs/sync.md tells an app to.
    pub fn apply(&mut self, change: &Value) {
        let entity = change["entity"].as_str().expect("entity").to_owned();
        let id = change["id"].as_str().expect("id").to_owned();
        match change["op"].as_str().expect("op") {
            "upsert" => {
                self.records.insert((entity, id), change["data"].clone());
            }
            "delete" | "leave" => {
                self.records.remove(&(entity.clone(), id.clone()));
                // A household takes what belongs to it along; a grid its households.
                let households: Vec<String> = match entity.as_str() {
                    "household" => vec![id],
                    "grid" => self
                        .records
                        .iter()
                        .filter(|((e, _), v)| e == "household" && v["grid_id"] == id.as_str())
                        .map(|((_, h), _)| h.clone())
                        .collect(),
                    _ => vec![],
                };
                for h in households {
                    self.records.retain(|(e, k), v| !(e == "household" && *k == h) && v["household_id"] != h.as_str());
                }
            }
            other => panic!("unknown op {other}"),
        }
    }

    pub fn of(&self, entity: &str) -> BTreeMap<String, Value> {
        self.records.iter().filter(|((e, _), _)| e == entity).map(|((_, id), v)| (id.clone(), v.clone())).collect()
    }

    /// The replica in the shape of [`server_view`]: open tasks and pending tag changes only
    /// (closed ones stay on a device as history).
    pub fn view(&self) -> View {
        let only = |entity: &str, keep: &dyn Fn(&Value) -> bool| -> BTreeMap<String, Value> {
            self.of(entity).into_iter().filter(|(_, v)| keep(v)).collect()
        };
        BTreeMap::from([
            ("household", only("household", &|_| true)),
            ("member", only("member", &|_| true)),
            ("task", only("task", &|v| v["status"] == "open")),
            ("visit", only("visit", &|_| true)),
            ("tag_change", only("tag_change", &|v| v["status"] == "pending")),
        ])
    }
}

pub fn by_id(items: Vec<Value>) -> BTreeMap<String, Value> {
    items.into_iter().map(|v| (v["id"].as_str().expect("id").to_owned(), v)).collect()
}

/// What the server's lists say the caller may see now: households, their members, open tasks,
/// visits and pending tag changes — of households not removed (a secretary still reads a
/// removed one by id, a device holds nothing of it).
pub fn server_view(
    households: Vec<Value>,
    members: Vec<Value>,
    open_tasks: Vec<Value>,
    visits: Vec<Value>,
    pending: Vec<Value>,
) -> View {
    let households = by_id(households);
    let current = |items: Vec<Value>| -> BTreeMap<String, Value> {
        by_id(
            items
                .into_iter()
                .filter(|v| households.contains_key(v["household_id"].as_str().unwrap_or_default()))
                .collect(),
        )
    };
    let (members, tasks, visits, pending) = (current(members), current(open_tasks), current(visits), current(pending));
    BTreeMap::from([
        ("household", households),
        ("member", members),
        ("task", tasks),
        ("visit", visits),
        ("tag_change", pending),
    ])
}

/// Records compared without what the clock changes between two reads (a task's `overdue`).
fn comparable(view: View) -> View {
    view.into_iter()
        .map(|(k, records)| {
            let records = records
                .into_iter()
                .map(|(id, mut v)| {
                    if let Some(o) = v.as_object_mut() {
                        o.remove("overdue");
                    }
                    (id, v)
                })
                .collect();
            (k, records)
        })
        .collect()
}

/// How a replica differs from the server's view, if it does.
pub fn differences(replica: View, server: View) -> Option<String> {
    let (replica, server) = (comparable(replica), comparable(server));
    for (kind, expected) in &server {
        let got = &replica[kind];
        let missing: Vec<&String> = expected.keys().filter(|k| !got.contains_key(*k)).collect();
        let extra: Vec<&String> = got.keys().filter(|k| !expected.contains_key(*k)).collect();
        if !missing.is_empty() || !extra.is_empty() {
            return Some(format!("{kind}: missing {missing:?}, extra {extra:?}"));
        }
        for (id, v) in expected {
            if &got[id] != v {
                return Some(format!("{kind} {id} differs: device {} server {v}", got[id]));
            }
        }
    }
    None
}
