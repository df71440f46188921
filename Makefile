# tenant-registry — see README.md for what each target does.
SHELL := /bin/bash
GO    ?= go
PKGS  ?= ./...
MIGRATE := $(GO) run ./cmd/migrate

.PHONY: dev build test test-short fuzz generate lint check-generated \
        migrate-up migrate-down migrate-down-all migrate-version migrate-status migrate-create bench \
        image manifests

## dev: run the service on the embedded SQLite store (in memory) with the dev seed
dev:
	APP_ENV=$${APP_ENV:-dev} $(GO) run ./cmd/server

## build: build ./bin/tenant-registry, ./bin/migrate and ./bin/auditctl
build:
	$(GO) build -o bin/tenant-registry ./cmd/server
	$(GO) build -o bin/migrate ./cmd/migrate
	$(GO) build -o bin/auditctl ./cmd/auditctl

## image: OCI images of the server and of cmd/migrate as docker-loadable tarballs
## (bin/images/*.tar, digests in bin/images/*.digest), built without a daemon;
## reproducible: every file and the config carry the commit's time
IMAGE_TAG      ?= $(shell git describe --tags 2>/dev/null || echo dev)
IMAGE_REVISION ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
IMAGE_CREATED  ?= $(shell git log -1 --format=%ct 2>/dev/null || echo 0)
IMAGE_SOURCE   ?= https://github.com/platform/tenant-registry
IMAGE_FLAGS     = -created $(IMAGE_CREATED) \
                  -label org.opencontainers.image.source=$(IMAGE_SOURCE) \
                  -label org.opencontainers.image.revision=$(IMAGE_REVISION) \
                  -label org.opencontainers.image.version=$(IMAGE_TAG)
image:
	$(GO) run ./cmd/image -package ./cmd/server -tag tenant-registry:$(IMAGE_TAG) \
	  -out bin/images/tenant-registry.tar $(IMAGE_FLAGS)
	$(GO) run ./cmd/image -package ./cmd/migrate -tag tenant-registry-migrate:$(IMAGE_TAG) \
	  -out bin/images/tenant-registry-migrate.tar $(IMAGE_FLAGS)

## manifests: the Kubernetes deployment rendered from deploy/k8s (kustomize) into
## bin/k8s/tenant-registry.yaml, images tagged IMAGE_TAG
manifests:
	$(GO) run ./cmd/manifests -dir deploy/k8s -tag $(IMAGE_TAG) -out bin/k8s/tenant-registry.yaml

## test: the whole suite with the race detector, PostgreSQL included (a throwaway cluster, or TEST_DATABASE_URL);
## the rolling restart behind HAProxy runs last, verbose, so that its request count shows
test: web/node_modules
	$(GO) test -race -count=1 -timeout 20m -skip '^TestRollingRestart$$' $(PKGS)
	@set -o pipefail; $(GO) test -race -count=1 -timeout 5m -run '^TestRollingRestart$$' -v ./cmd/server \
	  | grep -E '^(rolling restart|--- |ok|FAIL|panic)|_test.go:'


## test-short: the suite without PostgreSQL
test-short:
	$(GO) test -short -count=1 $(PKGS)

## fuzz: each fuzz target for FUZZTIME (10s); seed corpora in testdata/fuzz
## (`go test` alone replays them). -fuzz takes one package and target a run.
## Minimising a new input is bounded (200 runs): by default it may take a
## minute, during which the run shows 0 execs/s and a short FUZZTIME ends in
## "context deadline exceeded".
FUZZTIME ?= 10s
FUZZ_TARGETS := ./internal/tenant:FuzzValidateSlug ./internal/cursor:FuzzDecode \
                ./internal/apikey:FuzzWellFormed ./internal/server:FuzzRESTDecode \
                ./internal/server:FuzzSurface
fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
	  echo "fuzz $${t#*:} ($${t%%:*}) for $(FUZZTIME)"; \
	  $(GO) test -run '^$$' -fuzz "^$${t#*:}\$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 200x $${t%%:*}; \
	done

## generate: Ent code, protobuf/Connect Go code, the OpenAPI document and the
## TypeScript clients (gen/ts, protoc-gen-es from web/package-lock.json)
generate: web/node_modules
	$(GO) generate ./ent
	$(GO) tool buf generate

## web/node_modules: the pinned npm packages (protoc-gen-es, Connect-Web, esbuild, redocly)
web/node_modules: web/package.json web/package-lock.json
	npm ci --prefix web --no-audit --no-fund
	@touch $@

## check-generated: fail when `make generate` changes the tree
check-generated: generate
	@git diff --exit-code --stat -- gen ent migrations || { echo "generated code is stale: run make generate and commit" >&2; exit 1; }
	@test -z "$$(git status --porcelain -- gen ent)" || { git status --porcelain -- gen ent; echo "make generate created files: commit them" >&2; exit 1; }

## lint: go vet, gofmt, buf lint, redocly lint of the committed OpenAPI document,
## and cmd/server not linking the development-only migration tools (internal/devdb)
## nor go-containerregistry, kustomize or k8s.io (cmd/image, cmd/manifests)
## (recommended rules, redocly.yaml; @redocly/cli from web/package-lock.json)
lint: web/node_modules
	$(GO) vet $(PKGS)
	@test -z "$$(gofmt -l cmd internal ent/schema migrations)" || { gofmt -l cmd internal ent/schema migrations; echo "gofmt needed" >&2; exit 1; }
	$(GO) tool buf lint
	web/node_modules/.bin/redocly lint gen/openapi/openapi.yaml
	@! $(GO) list -deps ./cmd/server | grep -q 'internal/devdb$$' || { echo "cmd/server links internal/devdb (the development-only migration tools)" >&2; exit 1; }
	@! $(GO) list -deps ./cmd/server | grep -qE '^(github.com/google/go-containerregistry|sigs.k8s.io/kustomize|k8s.io)/' || { echo "cmd/server links the image or manifest tools' dependencies" >&2; exit 1; }

## bench: the production path (APP_ENV=stage, verified tokens) on PostgreSQL (a throwaway
## cluster, or BENCH_DATABASE_URL): verify (hot key, 10,000 random keys, churn, cold, 100,000
## cached), GetTenantBySlug, ResolveClaims, CreateTenant, AppendEvent, ListEvents, ListTenants
## at 1,000,000 tenants — req/s, p50, p99, peak RSS, cache hit ratio, ratio to a bare baseline
bench:
	$(GO) build -o bin/tenant-registry ./cmd/server
	$(GO) run ./cmd/bench -server bin/tenant-registry $(BENCH_FLAGS)

## migrate-up: apply pending migrations to DATABASE_URL
migrate-up:
	$(MIGRATE) up

## migrate-down: revert the last N migrations (N=1) — refused when APP_ENV=prod
migrate-down:
	$(MIGRATE) down $(or $(N),1)

## migrate-down-all: revert every migration — refused when APP_ENV=prod
migrate-down-all:
	$(MIGRATE) down-all

## migrate-version: the database's current version and what is pending
migrate-version:
	$(MIGRATE) status

migrate-status: migrate-version

## migrate-create NAME=…: diff the Ent schemas against a fresh throwaway dev database and write the next migration
migrate-create:
	@test -n "$(NAME)" || { echo "usage: make migrate-create NAME=add_something" >&2; exit 2; }
	$(MIGRATE) create $(NAME)
