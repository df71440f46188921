-- Every documented ListEvents filter of a tenant is an index seek in the
-- keyset order (created_at DESC, id DESC); the action's in pattern order so
-- that an action prefix is an index range too.
-- Drop index "auditlog_action" from table: "audit_log" (the tenant's action index replaces it)
DROP INDEX "auditlog_action";
-- Create index "auditlog_group_id_actor_id_created_at_id" to table: "audit_log"
CREATE INDEX "auditlog_group_id_actor_id_created_at_id" ON "audit_log" ("group_id", "actor_id", "created_at", "id");
-- Create index "auditlog_group_id_target_id_created_at_id" to table: "audit_log"
CREATE INDEX "auditlog_group_id_target_id_created_at_id" ON "audit_log" ("group_id", "target_id", "created_at", "id");
-- Create index "auditlog_group_id_target_type_created_at_id" to table: "audit_log"
CREATE INDEX "auditlog_group_id_target_type_created_at_id" ON "audit_log" ("group_id", "target_type", "created_at", "id");
-- Create index "auditlog_group_id_action_created_at_id" to table: "audit_log"
CREATE INDEX "auditlog_group_id_action_created_at_id" ON "audit_log" ("group_id", "action" varchar_pattern_ops, "created_at", "id");
-- Create index "auditlog_group_id_crud_created_at_id" to table: "audit_log"
CREATE INDEX "auditlog_group_id_crud_created_at_id" ON "audit_log" ("group_id", "crud", "created_at", "id");
