// Command manifests renders the Kubernetes deployment from a kustomization
// directory (kustomize as a library) into one multi-document YAML file:
//
//	manifests -dir deploy/k8s -tag dev -out bin/k8s/tenant-registry.yaml
//
// -tag, when given, sets the tag of both images (tenant-registry and
// tenant-registry-migrate) through an overlay on -dir; without it the
// kustomization's own images stand.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "manifests:", err)
		os.Exit(1)
	}
}

// images are the images the deployment runs; -tag applies to each.
var images = []string{"tenant-registry", "tenant-registry-migrate"}

func run(_ context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("manifests", flag.ContinueOnError)
	dir := fs.String("dir", "deploy/k8s", "kustomization directory")
	out := fs.String("out", "", "file to write (required; - for stdout)")
	tag := fs.String("tag", "", "tag of both images (default: the kustomization's)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 || *out == "" {
		return errors.New("usage: manifests [-dir DIR] [-tag TAG] -out FILE")
	}
	y, err := render(*dir, *tag)
	if err != nil {
		return err
	}
	if *out == "-" {
		_, err := stdout.Write(y)
		return err
	}
	if err := os.MkdirAll(filepath.Dir(*out), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(*out, y, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s\n", *out)
	return nil
}

// render runs kustomize on dir (through an overlay setting the images' tag
// when tag is set) and answers the documents, "---"-separated.
func render(dir, tag string) ([]byte, error) {
	root, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if tag != "" {
		overlay, err := os.MkdirTemp("", "manifests-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(overlay)
		base, err := filepath.Rel(overlay, root) // kustomize takes no absolute base
		if err != nil {
			return nil, err
		}
		var k strings.Builder
		fmt.Fprintf(&k, "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - %q\nimages:\n", filepath.ToSlash(base))
		for _, img := range images {
			fmt.Fprintf(&k, "  - name: %s\n    newTag: %q\n", img, tag)
		}
		if err := os.WriteFile(filepath.Join(overlay, "kustomization.yaml"), []byte(k.String()), 0o644); err != nil {
			return nil, err
		}
		root = overlay
	}
	m, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), root)
	if err != nil {
		return nil, fmt.Errorf("kustomize %s: %w", dir, err)
	}
	y, err := m.AsYaml()
	if err != nil {
		return nil, fmt.Errorf("kustomize %s: %w", dir, err)
	}
	header := fmt.Sprintf("# Rendered by `make manifests` (cmd/manifests) from %s: do not edit.\n"+
		"# The Secret tenant-registry is created by the operator (README.md, Deploying).\n", filepath.ToSlash(dir))
	return append(append([]byte(header), bytes.TrimSpace(y)...), '\n'), nil
}
