# Atlas CLI configuration, for people who have the CLI. The project itself
# does not need it: `go run ./cmd/migrate` applies the same directory with the
# same revisions table (schema "atlas_schema_revisions"), and
# `go run ./cmd/migrate create NAME` writes new files the same way
# `atlas migrate diff --env local NAME` does.
#
# migrations/20261123000001_enum_types.sql and *_updated_at_triggers.sql are
# hand-written; after editing a file by hand, rehash:
# `atlas migrate hash --env local` or `go run ./cmd/migrate hash`.

locals {
  migration_dir = "file://migrations"
  # Both this file and cmd/migrate keep the revisions here, whatever the URL's
  # search_path.
  revisions_schema = "atlas_schema_revisions"
}

env "local" {
  src = "ent://ent/schema"
  url = getenv("DATABASE_URL")
  dev = "docker://postgres/15/dev?search_path=public"
  migration {
    dir              = local.migration_dir
    revisions_schema = local.revisions_schema
  }
  format {
    migrate {
      diff = "{{ sql . \"  \" }}"
    }
  }
}

env "ci" {
  src = "ent://ent/schema"
  url = getenv("DATABASE_URL")
  # CI has a PostgreSQL service, no Docker: a scratch database on it.
  dev = getenv("DEV_DATABASE_URL")
  migration {
    dir              = local.migration_dir
    revisions_schema = local.revisions_schema
  }
  format {
    migrate {
      diff = "{{ sql . \"  \" }}"
    }
  }
}
