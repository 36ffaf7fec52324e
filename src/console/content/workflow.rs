//! Creating and editing content, and the approval workflow: submit, approve (the version seen,
//! by someone who wrote none of it), cancel. Each change is audited in its own transaction.

use super::store;
use super::{Content, ContentInput, QueueKey, State, Transition};
use crate::console::{Actor, Console, ConsoleError, Permission, audit};

fn changed_meanwhile() -> ConsoleError {
    ConsoleError::Conflict(
        "Nội dung vừa có thay đổi khác (của người khác hoặc ở một cửa sổ khác). Xin mở lại nội dung để xem bản mới nhất."
            .to_string(),
    )
}

impl Console {
    pub async fn create_content(
        &self,
        actor: &Actor,
        input: &ContentInput,
    ) -> Result<Content, ConsoleError> {
        actor.require(Permission::EditContent)?;
        let valid = self.validate(actor, input)?;
        let now = self.clock.now();
        let mut tx = self.db.pool.begin().await?;
        let id = store::insert(&mut tx, &valid, &actor.id, now).await?;
        store::record_version(&mut tx, id, 1, &actor.id, now).await?;
        audit::record(
            &mut *tx,
            now,
            &actor.id,
            "content.create",
            Some(&format!("content:{id}")),
            Some(&valid.title),
        )
        .await?;
        tx.commit().await?;
        self.content(actor, id).await
    }

    /// Changes content: a new version, written by `actor`. Anything but a draft goes back to
    /// draft and needs approving again — by someone who wrote none of it.
    pub async fn update_content(
        &self,
        actor: &Actor,
        id: i64,
        input: &ContentInput,
    ) -> Result<Content, ConsoleError> {
        actor.require(Permission::EditContent)?;
        let before = self.content(actor, id).await?;
        if !before.state.is_open() {
            return Err(ConsoleError::Conflict(format!(
                "Nội dung ở trạng thái \"{}\" không sửa được nữa.",
                before.state.label()
            )));
        }
        let valid = self.validate(actor, input)?;
        let now = self.clock.now();
        let version = before.version + 1;
        let mut tx = self.db.pool.begin().await?;
        if !store::update(&mut tx, id, (before.state, before.version), &valid, now).await? {
            return Err(changed_meanwhile());
        }
        store::record_version(&mut tx, id, version, &actor.id, now).await?;
        let detail = if before.state == State::Draft {
            format!("bản số {version}")
        } else {
            format!(
                "bản số {version}; {} → {}",
                before.state.label(),
                State::Draft.label()
            )
        };
        audit::record(
            &mut *tx,
            now,
            &actor.id,
            "content.edit",
            Some(&format!("content:{id}")),
            Some(&detail),
        )
        .await?;
        tx.commit().await?;
        self.content(actor, id).await
    }

    /// Moves `content`, as the actor saw it, to `to`: nothing happens (409) if it changed state
    /// or version since.
    async fn transition(
        &self,
        actor: &Actor,
        content: &Content,
        to: State,
        action: &str,
    ) -> Result<Content, ConsoleError> {
        let now = self.clock.now();
        let approver = (to == State::Approved).then_some(actor.id.as_str());
        let mut tx = self.db.pool.begin().await?;
        let seen = (content.state, content.version);
        if !store::transition(&mut tx, content.id, seen, to, approver, now).await? {
            return Err(changed_meanwhile());
        }
        audit::record(
            &mut *tx,
            now,
            &actor.id,
            action,
            Some(&format!("content:{}", content.id)),
            Some(&format!("bản số {}: {}", content.version, content.title)),
        )
        .await?;
        tx.commit().await?;
        self.content(actor, content.id).await
    }

    /// Submits, approves or cancels content. `seen` is the version the actor was shown: an
    /// approval must name it, and nothing is done to a version other than the one seen.
    pub async fn apply(
        &self,
        actor: &Actor,
        id: i64,
        step: Transition,
        seen: Option<i64>,
    ) -> Result<Content, ConsoleError> {
        actor.require(step.permission())?;
        match step {
            Transition::Submit => self.submit_content(actor, id, seen).await,
            Transition::Approve => {
                let seen = seen.ok_or_else(|| {
                    ConsoleError::invalid("version", "Thiếu số bản nội dung được duyệt.")
                })?;
                self.approve_content(actor, id, seen).await
            }
            Transition::Cancel => self.cancel_content(actor, id, seen).await,
        }
    }

    /// The content as the actor saw it: 409 when it has changed since.
    async fn as_seen(
        &self,
        actor: &Actor,
        id: i64,
        seen: Option<i64>,
    ) -> Result<Content, ConsoleError> {
        let content = self.content(actor, id).await?;
        match seen {
            Some(v) if v != content.version => Err(ConsoleError::Conflict(format!(
                "Nội dung đã được sửa sau khi bạn mở trang (nay là bản số {}, bạn đã xem bản số {v}). Xin đọc lại nội dung dưới đây rồi thực hiện lại.",
                content.version
            ))),
            _ => Ok(content),
        }
    }

    pub async fn submit_content(
        &self,
        actor: &Actor,
        id: i64,
        seen: Option<i64>,
    ) -> Result<Content, ConsoleError> {
        actor.require(Permission::EditContent)?;
        let content = self.as_seen(actor, id, seen).await?;
        if content.state != State::Draft {
            return Err(ConsoleError::Conflict(
                "Chỉ gửi duyệt được bản nháp.".to_string(),
            ));
        }
        self.transition(actor, &content, State::AwaitingApproval, "content.submit")
            .await
    }

    /// Approves version `seen`: the approver wrote none of it (neither the author nor anyone
    /// who edited it since it was created or last approved).
    pub async fn approve_content(
        &self,
        actor: &Actor,
        id: i64,
        seen: i64,
    ) -> Result<Content, ConsoleError> {
        actor.require(Permission::Approve)?;
        // The version seen first, then who wrote it; `transition` checks both again in the
        // statement that approves, so an edit between these reads approves nothing.
        let content = self.as_seen(actor, id, Some(seen)).await?;
        if self.writers(&content).await?.contains(&actor.id) {
            return Err(ConsoleError::Forbidden(
                "Bạn đã soạn hoặc sửa nội dung này nên không được tự duyệt; xin chuyển cho một người duyệt khác."
                    .to_string(),
            ));
        }
        if content.state != State::AwaitingApproval {
            return Err(ConsoleError::Conflict(
                "Chỉ duyệt được nội dung đang chờ duyệt.".to_string(),
            ));
        }
        self.transition(actor, &content, State::Approved, "content.approve")
            .await
    }

    /// Who may not approve `content`: its author, and everyone who wrote a version of it since
    /// it was created or last approved.
    pub async fn writers(&self, content: &Content) -> Result<Vec<String>, ConsoleError> {
        let mut writers = vec![content.author.clone()];
        for editor in store::editors_since_approval(&self.db, content.id).await? {
            if !writers.contains(&editor) {
                writers.push(editor);
            }
        }
        Ok(writers)
    }

    /// Staff cancel their own content; approvers anyone's. Only before sending starts.
    pub async fn cancel_content(
        &self,
        actor: &Actor,
        id: i64,
        seen: Option<i64>,
    ) -> Result<Content, ConsoleError> {
        actor.require(Permission::EditContent)?;
        let content = self.as_seen(actor, id, seen).await?;
        if content.author != actor.id && !Permission::Approve.allows(actor.role) {
            return Err(ConsoleError::Forbidden(
                "Chỉ người soạn hoặc người duyệt mới được hủy nội dung này.".to_string(),
            ));
        }
        if !content.state.is_open() {
            return Err(ConsoleError::Conflict(format!(
                "Nội dung ở trạng thái \"{}\" không hủy được.",
                content.state.label()
            )));
        }
        self.transition(actor, &content, State::Cancelled, "content.cancel")
            .await
    }

    /// One item, if the actor's area covers its audience.
    pub async fn content(&self, actor: &Actor, id: i64) -> Result<Content, ConsoleError> {
        actor.require(Permission::ViewQueue)?;
        let content = store::one(&self.db, &self.config.channels, id)
            .await?
            .ok_or(ConsoleError::NotFound)?;
        if !actor.covers(&content.areas, &self.config.areas) {
            return Err(ConsoleError::NotFound);
        }
        Ok(content)
    }

    /// The queue as the actor may see it, soonest first; cancelled and done last.
    pub async fn contents(&self, actor: &Actor) -> Result<Vec<Content>, ConsoleError> {
        actor.require(Permission::ViewQueue)?;
        self.contents_in_scope(actor).await
    }

    /// At most `limit` items of [`Console::contents`], from after the item at `after`. The
    /// scope is checked item by item (an item's audience is a list of areas), reading the queue
    /// a batch at a time, so a page never needs the whole queue in memory.
    pub async fn contents_page(
        &self,
        actor: &Actor,
        after: Option<QueueKey>,
        limit: usize,
    ) -> Result<Vec<Content>, ConsoleError> {
        actor.require(Permission::ViewQueue)?;
        // Never tiny batches: an account whose items are rare would otherwise scan the whole
        // queue a row or two per query (`limit=1`).
        let batch_size = limit.max(200);
        let mut page = Vec::new();
        let mut scanned = after;
        loop {
            let batch = store::page(
                &self.db,
                &self.config.channels,
                scanned,
                i64::try_from(batch_size).unwrap_or(i64::MAX),
            )
            .await?;
            let last_batch = batch.len() < batch_size;
            for content in batch {
                scanned = Some(QueueKey::of(&content));
                if actor.covers(&content.areas, &self.config.areas) {
                    page.push(content);
                    if page.len() == limit {
                        return Ok(page);
                    }
                }
            }
            if last_batch {
                return Ok(page);
            }
        }
    }

    /// Content sent or being sent to an audience within the actor's area, newest first: the
    /// dashboard's campaign filter, which any role that sees the dashboard may use.
    pub async fn sent_campaigns(&self, actor: &Actor) -> Result<Vec<(i64, String)>, ConsoleError> {
        let mut sent: Vec<Content> = self
            .contents_in_scope(actor)
            .await?
            .into_iter()
            .filter(|c| matches!(c.state, State::Sending | State::Done))
            .collect();
        sent.sort_by_key(|c| std::cmp::Reverse((c.send_at, c.id)));
        Ok(sent.into_iter().map(|c| (c.id, c.title)).collect())
    }

    /// Every item whose audience lies within the actor's area, whatever their role may see.
    pub(crate) async fn contents_in_scope(
        &self,
        actor: &Actor,
    ) -> Result<Vec<Content>, ConsoleError> {
        Ok(store::all(&self.db, &self.config.channels)
            .await?
            .into_iter()
            .filter(|c| actor.covers(&c.areas, &self.config.areas))
            .collect())
    }
}
