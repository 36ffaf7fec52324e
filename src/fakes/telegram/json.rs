//! The Bot API's objects as the fake writes them: users, messages, chat members.

use serde_json::{Value, json};

/// Marks a leading `/command` as Telegram does, with a `bot_command` entity.
pub(super) fn mark_command(message: &mut Value, text: &str) {
    if text.starts_with('/') {
        let len = text
            .split_whitespace()
            .next()
            .unwrap_or(text)
            .encode_utf16()
            .count();
        message["entities"] = json!([{"type": "bot_command", "offset": 0, "length": len}]);
    }
}

pub(super) fn user(id: i64) -> Value {
    json!({"id": id, "is_bot": false, "first_name": "Cư dân", "language_code": "vi"})
}

pub(super) fn private_message(user_id: i64, message_id: i64) -> Value {
    json!({
        "message_id": message_id,
        "date": chrono::Utc::now().timestamp(),
        "chat": {"id": user_id, "type": "private", "first_name": "Cư dân"},
        "from": user(user_id),
    })
}

pub(super) fn group_message(chat_id: i64, from: Value, message_id: i64) -> Value {
    json!({
        "message_id": message_id,
        "date": chrono::Utc::now().timestamp(),
        "chat": {"id": chat_id, "type": "group", "title": "Chi hội Phụ nữ"},
        "from": from,
    })
}

pub(super) fn as_i64(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// A `ChatMember` as the Bot API gives it: the fields each status carries.
pub(super) fn chat_member(user_id: i64, status: &str) -> Value {
    let mut member = json!({"status": status, "user": user(user_id)});
    let fields: Value = match status {
        "creator" => json!({"is_anonymous": false}),
        "administrator" => json!({
            "can_be_edited": false, "is_anonymous": false, "can_manage_chat": true,
            "can_delete_messages": true, "can_manage_video_chats": true,
            "can_restrict_members": true, "can_promote_members": false, "can_change_info": true,
            "can_invite_users": true, "can_post_stories": false, "can_edit_stories": false,
            "can_delete_stories": false, "can_pin_messages": true,
        }),
        "restricted" => json!({
            "is_member": true, "can_send_messages": false, "can_send_audios": false,
            "can_send_documents": false, "can_send_photos": false, "can_send_videos": false,
            "can_send_video_notes": false, "can_send_voice_notes": false, "can_send_polls": false,
            "can_send_other_messages": false, "can_add_web_page_previews": false,
            "can_change_info": false, "can_invite_users": false, "can_pin_messages": false,
            "can_manage_topics": false, "until_date": 0,
        }),
        "kicked" => json!({"until_date": 0}),
        _ => json!({}),
    };
    if let (Some(member), Value::Object(fields)) = (member.as_object_mut(), fields) {
        member.extend(fields);
    }
    member
}

pub(super) fn bot_user() -> Value {
    json!({"id": 100000001, "is_bot": true, "first_name": "Loa", "username": "loa_test_bot"})
}
