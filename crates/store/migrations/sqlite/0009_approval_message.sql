-- What a gate asks its approvers (`approval.message`, rendered when the task starts waiting).
ALTER TABLE tasks ADD COLUMN approval_message TEXT;
