//! Reports: what can be reported, how an admin closes a report, and the
//! statuses a report moves through, stored as text.

crate::text_enum! {
    /// What can be reported.
    pub enum Target {
        Post = "post",
        Message = "message",
        User = "user",
    }
}

crate::text_enum! {
    /// How an admin closes a report.
    pub enum Action {
        Dismiss = "dismiss",
        RemoveContent = "remove_content",
        BanUser = "ban_user",
    }
}

crate::text_enum! {
    /// A report: open until an admin closes it with an [`Action`].
    pub enum ReportStatus {
        Open = "open",
        Dismissed = "dismissed",
        Removed = "removed",
        Banned = "banned",
    }
}

impl Action {
    /// The status a report ends in.
    pub fn status(self) -> ReportStatus {
        match self {
            Action::Dismiss => ReportStatus::Dismissed,
            Action::RemoveContent => ReportStatus::Removed,
            Action::BanUser => ReportStatus::Banned,
        }
    }
}
