-- Modify "outbox" table
ALTER TABLE "outbox" ADD COLUMN "lease_token" uuid NULL;
