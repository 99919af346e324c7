//! Erasure and export of a person's data across every context (GDPR articles 15, 17 and 20).
//!
//! Identity erases its own copy at once and publishes `identity.user.erased`; each context that
//! holds personal data answers with its step (`<context>.privacy.erased`), recorded here, so an
//! administrator sees when the erasure finished everywhere. An export works the same way:
//! `identity.export.requested`, one part per context, then one archive and a mail. A context that
//! was down answers when it is back: the bus keeps the request for it.

pub mod api;
pub mod store;

use std::io::Write as _;
use std::sync::Arc;

use contracts::api::identity::{ErasureReport, ErasureStepView, ExportStatus, ExportView};
use contracts::events::identity::{ExportReady, ExportRequested, UserErased};
use contracts::events::privacy::{
    CONTEXTS_WITH_PERSONAL_DATA, ERASED_PATTERN, EXPORTED_PATTERN, ErasureStep, ExportPart,
};
use platform::auth::AuthUser;
use platform::events::{Event, EventHandler, HandlerError};
use serde_json::json;
use time::OffsetDateTime;
use uuid::Uuid;

use self::store::{AccountErasure, ErasureStepRecord, ExportPartRecord, ExportRecord};
use crate::domain::{UserId, UserStatus};
use crate::service::{AuditExt as _, ClientInfo, IdResult, IdentityError, IdentityService, audit};
use crate::store::{AuditFilter, StoreError, User};

/// The archive's format name, in its manifest (docs/privacy.md describes each file).
pub const ARCHIVE_FORMAT: &str = "emporium-export/1";
/// How long an export may wait for its parts before it is dropped (a context down for a day).
const STALE_AFTER: time::Duration = time::Duration::days(1);
/// The most exports a list shows.
const LIST_LIMIT: u32 = 20;
/// The most audit records an export carries (newest first).
const AUDIT_LIMIT: u32 = 500;

/// Where an export stands at `now`.
pub fn export_status(x: &ExportRecord, now: OffsetDateTime) -> ExportStatus {
    match (x.ready_at, x.expires_at) {
        (Some(_), Some(expires)) if expires <= now => ExportStatus::Expired,
        (Some(_), _) => ExportStatus::Ready,
        (None, _) if x.requested_at + STALE_AFTER <= now => ExportStatus::Expired,
        (None, _) => ExportStatus::Preparing,
    }
}

fn export_view(x: &ExportRecord, now: OffsetDateTime) -> ExportView {
    let status = export_status(x, now);
    ExportView {
        id: x.id,
        status,
        requested_at: x.requested_at,
        ready_at: x.ready_at,
        expires_at: x.expires_at,
        download: (status == ExportStatus::Ready).then(|| format!("/api/v1/users/me/exports/{}/archive", x.id)),
    }
}

/// The archive: a gzipped tar of `emporium-export/manifest.json` and one `<context>.json` per part.
pub fn archive(x: &ExportRecord, parts: &[ExportPartRecord]) -> std::io::Result<Vec<u8>> {
    let manifest = json!({
        "format": ARCHIVE_FORMAT,
        "export_id": x.id,
        "user_id": x.user_id,
        "requested_at": rfc3339(x.requested_at),
        "ready_at": x.ready_at.map(rfc3339),
        "files": parts.iter().map(|p| json!({
            "name": format!("{}.json", p.context),
            "context": p.context,
            "received_at": rfc3339(p.received_at),
        })).collect::<Vec<_>>(),
    });
    let mut files = vec![("manifest.json".to_owned(), pretty(&manifest))];
    for p in parts {
        let data: serde_json::Value = serde_json::from_str(&p.data).map_err(std::io::Error::other)?;
        files.push((format!("{}.json", p.context), pretty(&data)));
    }
    let mtime = x
        .ready_at
        .unwrap_or(x.requested_at)
        .unix_timestamp()
        .max(0)
        .unsigned_abs();
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    for (name, body) in files {
        let mut header = tar::Header::new_ustar();
        header.set_size(body.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(mtime);
        header.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut header, format!("emporium-export/{name}"), body.as_slice())?;
    }
    let mut gz = tar.into_inner()?;
    gz.flush()?;
    gz.finish()
}

fn pretty(v: &serde_json::Value) -> Vec<u8> {
    let mut text = serde_json::to_vec_pretty(v).unwrap_or_default();
    text.push(b'\n');
    text
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn internal(e: StoreError) -> IdentityError {
    IdentityError::from(e)
}

impl IdentityService {
    /// Erases `user`'s account: identity's copy at once, every other context through
    /// `identity.user.erased`. `by` is the account itself or the administrator acting on request.
    pub(crate) async fn erase(&self, user: &User, by: Uuid, client: &ClientInfo) -> IdResult<()> {
        let now = platform::clock::now();
        let erased = Event::of(
            user.id.0.to_string(),
            &UserErased {
                user_id: user.id.0,
                erased_at: now,
            },
        );
        self.privacy
            .erase_account(
                &AccountErasure {
                    user_id: user.id.0,
                    email: &user.email,
                    placeholder_email: &format!("deleted-{}@invalid", user.id),
                    requested_by: by,
                    at: now,
                },
                &[erased],
            )
            .await
            .map_err(internal)?;
        self.outbox.notify();
        self.store
            .revoke_sessions_of(user.id, None, "account deleted", now)
            .await?;
        self.announce_revocation(user.id, None, now, "account deleted").await;
        let mut event = audit("user.deleted").client(client);
        if by != user.id.0 {
            event = event.actor(by).detail("erased by an administrator on request");
        }
        event.user_id = Some(user.id.0);
        self.record(event).await;
        Ok(())
    }

    /// Erases an account on its owner's request (admin). Not one's own: that is `DELETE /users/me`.
    pub async fn erase_user_on_request(
        &self,
        auth: &AuthUser,
        id: Uuid,
        client: &ClientInfo,
    ) -> IdResult<ErasureReport> {
        let admin = self.current_admin(auth).await?;
        if admin.id.0 == id {
            return Err(IdentityError::Conflict(
                "administrators erase their own account from their account page".into(),
            ));
        }
        let user = self
            .store
            .user_by_id(UserId(id))
            .await?
            .ok_or(IdentityError::NotFound("user"))?;
        if user.status == UserStatus::Deleted {
            return Err(IdentityError::Conflict("this account is already erased".into()));
        }
        self.erase(&user, admin.id.0, client).await?;
        self.erasure_report_of(id).await
    }

    /// How far an account's erasure went (admin).
    pub async fn erasure_report(&self, auth: &AuthUser, id: Uuid) -> IdResult<ErasureReport> {
        self.current_admin(auth).await?;
        self.erasure_report_of(id).await
    }

    async fn erasure_report_of(&self, id: Uuid) -> IdResult<ErasureReport> {
        let e = self
            .privacy
            .erasure(id)
            .await
            .map_err(internal)?
            .ok_or(IdentityError::NotFound("erasure"))?;
        let mut steps = vec![ErasureStepView {
            context: crate::CONTEXT.to_owned(),
            completed_at: e.requested_at,
            summary: "name, e-mail, password, addresses, session and audit details erased".to_owned(),
        }];
        steps.extend(e.steps.iter().map(|s| ErasureStepView {
            context: s.context.clone(),
            completed_at: s.completed_at,
            summary: s.summary.clone(),
        }));
        let waiting_for = CONTEXTS_WITH_PERSONAL_DATA
            .iter()
            .filter(|c| !e.steps.iter().any(|s| s.context == **c))
            .map(|c| (*c).to_owned())
            .collect();
        Ok(ErasureReport {
            user_id: e.user_id,
            requested_at: e.requested_at,
            requested_by: e.requested_by,
            complete: e.completed_at.is_some(),
            completed_at: e.completed_at,
            steps,
            waiting_for,
        })
    }

    /// Starts an export of the caller's data.
    pub async fn request_export(&self, auth: &AuthUser, client: &ClientInfo) -> IdResult<ExportView> {
        let user = self.current_user(auth).await?;
        self.start_export(&user, user.id.0, client).await
    }

    /// Starts an export of an account's data on its owner's request (admin); the owner is mailed.
    pub async fn export_user_on_request(&self, auth: &AuthUser, id: Uuid, client: &ClientInfo) -> IdResult<ExportView> {
        let admin = self.current_admin(auth).await?;
        let user = self
            .store
            .user_by_id(UserId(id))
            .await?
            .ok_or(IdentityError::NotFound("user"))?;
        if user.status == UserStatus::Deleted {
            return Err(IdentityError::Conflict(
                "this account is erased: there is nothing to export".into(),
            ));
        }
        self.start_export(&user, admin.id.0, client).await
    }

    async fn start_export(&self, user: &User, by: Uuid, client: &ClientInfo) -> IdResult<ExportView> {
        let now = platform::clock::now();
        let recent = self.privacy.exports_of(user.id.0, 1).await.map_err(internal)?;
        if recent
            .first()
            .is_some_and(|x| export_status(x, now) == ExportStatus::Preparing)
        {
            return Err(IdentityError::Conflict(
                "an export of this account is being prepared; it is mailed when ready".into(),
            ));
        }
        let export = ExportRecord {
            id: Uuid::now_v7(),
            user_id: user.id.0,
            requested_by: by,
            requested_at: now,
            ready_at: None,
            expires_at: None,
        };
        let own = self.identity_part(user).await?;
        let requested = Event::of(
            user.id.0.to_string(),
            &ExportRequested {
                export_id: export.id,
                user_id: user.id.0,
            },
        );
        self.privacy
            .create_export(&export, &own.to_string(), &[requested])
            .await
            .map_err(internal)?;
        self.outbox.notify();
        let mut event = audit("privacy.export_requested")
            .user(user)
            .client(client)
            .detail(format!("export {}", export.id));
        if by != user.id.0 {
            event = event.actor(by);
        }
        self.record(event).await;
        Ok(export_view(&export, now))
    }

    /// Identity's part: the account, its addresses, live sessions and security events.
    async fn identity_part(&self, user: &User) -> IdResult<serde_json::Value> {
        let now = platform::clock::now();
        let addresses = self.store.addresses(user.id).await?;
        let sessions = self.store.live_sessions(user.id, now).await?;
        let filter = AuditFilter {
            user_id: Some(user.id.0),
            ..AuditFilter::default()
        };
        let audit = self.store.list_audit(&filter, None, AUDIT_LIMIT).await?;
        Ok(json!({
            "account": {
                "id": user.id.0,
                "email": user.email,
                "name": user.name,
                "role": user.role.as_str(),
                "email_verified_at": user.email_verified_at.map(rfc3339),
                "created_at": rfc3339(user.created_at),
            },
            "addresses": addresses.iter().map(|a| json!({
                "label": a.label,
                "default": a.is_default,
                "name": a.address.name,
                "line1": a.address.line1,
                "line2": a.address.line2,
                "city": a.address.city,
                "postal_code": a.address.postal_code,
                "country": a.address.country.as_str(),
                "phone": a.address.phone,
            })).collect::<Vec<_>>(),
            "sessions": sessions.iter().map(|s| json!({
                "device": s.user_agent,
                "ip": s.ip,
                "created_at": rfc3339(s.created_at),
                "last_seen_at": rfc3339(s.last_seen_at),
            })).collect::<Vec<_>>(),
            "security_events": audit.iter().map(|e| json!({
                "kind": e.kind,
                "occurred_at": rfc3339(e.occurred_at),
                "ip": e.ip,
                "device": e.user_agent,
            })).collect::<Vec<_>>(),
        }))
    }

    /// The caller's exports, newest first.
    pub async fn my_exports(&self, auth: &AuthUser) -> IdResult<Vec<ExportView>> {
        let user = self.current_user(auth).await?;
        let now = platform::clock::now();
        let list = self.privacy.exports_of(user.id.0, LIST_LIMIT).await.map_err(internal)?;
        Ok(list.iter().map(|x| export_view(x, now)).collect())
    }

    /// An account's exports (admin).
    pub async fn exports_of_user(&self, auth: &AuthUser, id: Uuid) -> IdResult<Vec<ExportView>> {
        self.current_admin(auth).await?;
        let now = platform::clock::now();
        let list = self.privacy.exports_of(id, LIST_LIMIT).await.map_err(internal)?;
        Ok(list.iter().map(|x| export_view(x, now)).collect())
    }

    /// The caller's archive: `(file name, .tar.gz bytes)`.
    pub async fn export_archive(&self, auth: &AuthUser, id: Uuid, client: &ClientInfo) -> IdResult<(String, Vec<u8>)> {
        let user = self.current_user(auth).await?;
        let export = self
            .privacy
            .export(id)
            .await
            .map_err(internal)?
            .filter(|x| x.user_id == user.id.0)
            .ok_or(IdentityError::NotFound("export"))?;
        match export_status(&export, platform::clock::now()) {
            ExportStatus::Preparing => {
                return Err(IdentityError::Conflict("this export is still being prepared".into()));
            }
            ExportStatus::Expired => return Err(IdentityError::Gone("this export expired; ask for a new one".into())),
            ExportStatus::Ready => {}
        }
        let parts = self.privacy.export_parts(id).await.map_err(internal)?;
        let bytes = archive(&export, &parts).map_err(|e| IdentityError::Internal(e.into()))?;
        self.record(
            audit("privacy.export_downloaded")
                .user(&user)
                .client(client)
                .detail(format!("export {id}")),
        )
        .await;
        let day = export.requested_at.date();
        Ok((format!("emporium-export-{day}.tar.gz"), bytes))
    }

    /// Records a context's erasure step.
    pub async fn record_erasure_step(&self, step: &ErasureStep) -> IdResult<()> {
        let record = ErasureStepRecord {
            context: step.context.clone(),
            completed_at: step.completed_at,
            summary: step.summary.clone(),
        };
        let complete = self
            .privacy
            .record_erasure_step(step.user_id, &record, CONTEXTS_WITH_PERSONAL_DATA)
            .await
            .map_err(internal)?;
        if complete {
            tracing::info!(user = %step.user_id, "erasure complete in every context");
            let mut event = audit("privacy.erasure_completed");
            event.user_id = Some(step.user_id);
            self.record(event).await;
        }
        Ok(())
    }

    /// Stores a context's export part; the last one makes the archive ready and mails its owner.
    pub async fn record_export_part(&self, part: &ExportPart) -> IdResult<()> {
        let now = platform::clock::now();
        let Some(user) = self.store.user_by_id(UserId(part.user_id)).await? else {
            return Ok(());
        };
        let expires_at = now + self.config.export_ttl;
        let ready = Event::of(
            part.user_id.to_string(),
            &ExportReady {
                export_id: part.export_id,
                user_id: part.user_id,
                email: user.email.clone(),
                name: user.name.clone(),
                expires_at,
            },
        );
        let record = ExportPartRecord {
            context: part.context.clone(),
            data: part.data.to_string(),
            received_at: now,
        };
        match self
            .privacy
            .add_export_part(
                part.export_id,
                &record,
                CONTEXTS_WITH_PERSONAL_DATA,
                expires_at,
                &[ready],
            )
            .await
        {
            Ok(true) => {
                self.outbox.notify();
                tracing::info!(export = %part.export_id, "export ready");
                Ok(())
            }
            Ok(false) => Ok(()),
            // Expired, purged, or the account erased meanwhile: nothing to add the part to.
            Err(StoreError::NotFound) => Ok(()),
            Err(e) => Err(internal(e)),
        }
    }

    /// Deletes expired archives and exports that never completed.
    pub async fn purge_exports(&self) -> IdResult<u64> {
        let now = platform::clock::now();
        self.privacy
            .purge_exports(now, now - STALE_AFTER)
            .await
            .map_err(internal)
    }
}

/// The consumer of every context's erasure steps and export parts.
pub struct Answers(pub Arc<IdentityService>);

/// Its routing patterns.
pub const PATTERNS: [&str; 2] = [ERASED_PATTERN, EXPORTED_PATTERN];

#[async_trait::async_trait]
impl EventHandler for Answers {
    async fn handle(&self, event: &Event) -> Result<(), HandlerError> {
        if event.event_type.ends_with(".privacy.erased") {
            let step: ErasureStep = event
                .data_as()
                .map_err(|e| HandlerError::permanent(format!("undecodable erasure step: {e}")))?;
            self.0
                .record_erasure_step(&step)
                .await
                .map_err(|e| HandlerError::retryable(e.to_string()))
        } else if event.event_type.ends_with(".privacy.exported") {
            let part: ExportPart = event
                .data_as()
                .map_err(|e| HandlerError::permanent(format!("undecodable export part: {e}")))?;
            self.0
                .record_export_part(&part)
                .await
                .map_err(|e| HandlerError::retryable(e.to_string()))
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read as _;

    use super::*;

    fn export(requested: i64, ready: Option<i64>, expires: Option<i64>) -> ExportRecord {
        let at = |s: i64| OffsetDateTime::from_unix_timestamp(1_800_000_000 + s).expect("time");
        ExportRecord {
            id: Uuid::now_v7(),
            user_id: Uuid::now_v7(),
            requested_by: Uuid::nil(),
            requested_at: at(requested),
            ready_at: ready.map(at),
            expires_at: expires.map(at),
        }
    }

    #[test]
    fn status_follows_the_clock() {
        let now = OffsetDateTime::from_unix_timestamp(1_800_000_000 + 100).expect("time");
        assert_eq!(export_status(&export(0, None, None), now), ExportStatus::Preparing);
        assert_eq!(export_status(&export(0, Some(5), Some(200)), now), ExportStatus::Ready);
        assert_eq!(
            export_status(&export(0, Some(5), Some(100)), now),
            ExportStatus::Expired
        );
        assert_eq!(
            export_status(&export(-90_000, None, None), now),
            ExportStatus::Expired,
            "never completed"
        );
        let view = export_view(&export(0, Some(5), Some(200)), now);
        assert!(view.download.is_some_and(|d| d.ends_with("/archive")));
        assert!(export_view(&export(0, None, None), now).download.is_none());
    }

    #[test]
    fn the_archive_holds_a_manifest_and_one_file_per_context() {
        let x = export(0, Some(5), Some(200));
        let parts = [
            ExportPartRecord {
                context: "identity".into(),
                data: r#"{"account":{"email":"ann@example.com"}}"#.into(),
                received_at: x.requested_at,
            },
            ExportPartRecord {
                context: "ordering".into(),
                data: r#"{"orders":[]}"#.into(),
                received_at: x.requested_at,
            },
        ];
        let bytes = archive(&x, &parts).expect("archive");
        let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(bytes.as_slice()));
        let mut seen = std::collections::BTreeMap::new();
        for entry in tar.entries().expect("entries") {
            let mut entry = entry.expect("entry");
            let name = entry.path().expect("path").display().to_string();
            let mut text = String::new();
            entry.read_to_string(&mut text).expect("read");
            seen.insert(name, serde_json::from_str::<serde_json::Value>(&text).expect("json"));
        }
        assert_eq!(seen.len(), 3);
        assert_eq!(seen["emporium-export/manifest.json"]["format"], ARCHIVE_FORMAT);
        assert_eq!(
            seen["emporium-export/manifest.json"]["files"].as_array().map(Vec::len),
            Some(2)
        );
        assert_eq!(
            seen["emporium-export/identity.json"]["account"]["email"],
            "ann@example.com"
        );
        assert_eq!(seen["emporium-export/ordering.json"]["orders"], json!([]));
    }
}
