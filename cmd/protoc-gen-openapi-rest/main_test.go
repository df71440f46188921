package main

import "testing"

func TestSummary(t *testing.T) {
	tests := []struct {
		name, comment, method, want string
	}{
		{"one sentence", " ListEvents pages through events, newest first.\n", "ListEvents", "ListEvents pages through events, newest first"},
		{"first of two", " VerifyApiKey answers whether a key is good. A well-formed request always\n gets a normal answer.\n", "VerifyApiKey", "VerifyApiKey answers whether a key is good"},
		{"across lines", " StartTrial starts a self-serve trial of a product (once per product per\n tenant, ever).\n", "StartTrial", "StartTrial starts a self-serve trial of a product (once per product per tenant, ever)"},
		{"e.g. does not end it", ` ListEvents filters by action (e.g. "tenant.*"). More.` + "\n", "ListEvents", `ListEvents filters by action (e.g. "tenant.*")`},
		{"no full stop", " RevokeApiKey revokes a key\n", "RevokeApiKey", "RevokeApiKey revokes a key"},
		{"no comment", "", "GetTenant", "GetTenant"},
		{"blank comment", " \n \n", "GetTenant", "GetTenant"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := summary(tt.comment, tt.method); got != tt.want {
				t.Errorf("summary(%q, %q) = %q, want %q", tt.comment, tt.method, got, tt.want)
			}
		})
	}
}
