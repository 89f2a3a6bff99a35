//! Alerts in memory, with the open ones indexed by (patient, rule) as SQLite's
//! partial index does.

use std::collections::HashSet;

use async_trait::async_trait;

use crate::api::Alerts;
use crate::{AlertRecord, NewAlert, StoreResult};

use super::state::{fit, next_id, State};
use super::MemoryStore;

impl State {
    fn raise_alert(&mut self, alert: &NewAlert) -> StoreResult<Option<i64>> {
        fit(alert.device_serial)?;
        // AUTOINCREMENT uses up an id even when the insert conflicts.
        let id = next_id(&mut self.last_alert_id)?;
        let open = (alert.pseudonym.clone(), alert.rule.clone());
        if self.open_alerts.contains_key(&open) {
            return Ok(None);
        }
        self.open_alerts.insert(open, id);
        self.alerts_by_patient
            .insert((alert.pseudonym.clone(), alert.raised_at_ms, id));
        self.alerts.insert(
            id,
            AlertRecord {
                id,
                alert: alert.clone(),
                acknowledged_by: None,
                acknowledged_at_ms: None,
                resolved_by: None,
                resolved_at_ms: None,
                escalation_step: 0,
            },
        );
        Ok(Some(id))
    }

    fn open_alerts(&self, pseudonyms: Option<&[String]>, limit: u32) -> Vec<AlertRecord> {
        let mut found: Vec<AlertRecord> = match pseudonyms {
            None => self
                .open_alerts
                .values()
                .filter_map(|id| self.alerts.get(id).cloned())
                .collect(),
            Some(pseudonyms) => {
                let wanted: HashSet<&str> = pseudonyms.iter().map(String::as_str).collect();
                self.open_alerts
                    .iter()
                    .filter(|((pseudonym, _), _)| wanted.contains(pseudonym.as_str()))
                    .filter_map(|(_, id)| self.alerts.get(id).cloned())
                    .collect()
            }
        };
        crate::rules::newest_alerts_first(&mut found);
        found.truncate(limit as usize);
        found
    }

    fn alerts_of(&self, pseudonym: &str, limit: u32) -> Vec<AlertRecord> {
        // ORDER BY raised_at_ms DESC, id DESC.
        self.alerts_by_patient
            .range((pseudonym.to_string(), i64::MIN, i64::MIN)..)
            .take_while(|(p, _, _)| p == pseudonym)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .take(limit as usize)
            .filter_map(|(_, _, id)| self.alerts.get(id).cloned())
            .collect()
    }

    fn acknowledge_alert(&mut self, id: i64, by: &str, at_ms: i64) -> bool {
        let Some(record) = self.alerts.get_mut(&id) else {
            return false;
        };
        if record.acknowledged_at_ms.is_some() {
            return false;
        }
        record.acknowledged_by = Some(by.to_string());
        record.acknowledged_at_ms = Some(at_ms);
        self.open_alerts
            .remove(&(record.alert.pseudonym.clone(), record.alert.rule.clone()));
        true
    }

    fn resolve_alert(&mut self, id: i64, by: &str, at_ms: i64) -> bool {
        let Some(record) = self.alerts.get_mut(&id) else {
            return false;
        };
        if record.resolved_at_ms.is_some() {
            return false;
        }
        if record.acknowledged_at_ms.is_none() {
            record.acknowledged_by = Some(by.to_string());
            record.acknowledged_at_ms = Some(at_ms);
            self.open_alerts
                .remove(&(record.alert.pseudonym.clone(), record.alert.rule.clone()));
        }
        record.resolved_by = Some(by.to_string());
        record.resolved_at_ms = Some(at_ms);
        true
    }

    fn advance_escalation(&mut self, id: i64, from: u32, to: u32) -> bool {
        match self.alerts.get_mut(&id) {
            Some(record)
                if record.acknowledged_at_ms.is_none() && record.escalation_step == from =>
            {
                record.escalation_step = to;
                true
            }
            _ => false,
        }
    }
}

#[async_trait]
impl Alerts for MemoryStore {
    async fn raise_alert(&self, alert: &NewAlert) -> StoreResult<Option<i64>> {
        self.with(|s| s.raise_alert(alert))
    }

    async fn open_alerts(
        &self,
        pseudonyms: Option<&[String]>,
        limit: u32,
    ) -> StoreResult<Vec<AlertRecord>> {
        self.with(|s| Ok(s.open_alerts(pseudonyms, limit)))
    }

    async fn alerts_of(&self, pseudonym: &str, limit: u32) -> StoreResult<Vec<AlertRecord>> {
        self.with(|s| Ok(s.alerts_of(pseudonym, limit)))
    }

    async fn acknowledge_alert(&self, id: i64, by: &str, at_ms: i64) -> StoreResult<bool> {
        self.with(|s| Ok(s.acknowledge_alert(id, by, at_ms)))
    }

    async fn resolve_alert(&self, id: i64, by: &str, at_ms: i64) -> StoreResult<bool> {
        self.with(|s| Ok(s.resolve_alert(id, by, at_ms)))
    }

    async fn alert(&self, id: i64) -> StoreResult<Option<AlertRecord>> {
        self.with(|s| Ok(s.alerts.get(&id).cloned()))
    }

    async fn advance_escalation(&self, id: i64, from: u32, to: u32) -> StoreResult<bool> {
        self.with(|s| Ok(s.advance_escalation(id, from, to)))
    }
}
