package protocol

import "testing"

// The protocol claims at the known tip; the listed tip is a prototype
// that Default never picks.
func TestClaimStart(t *testing.T) {
	if got := Default().ClaimStart(); got != ClaimKnownTip {
		t.Fatalf("Default claims at %d, want the known tip", got)
	}
	if KnownTip() != ClaimKnownTip || ListedTip() != ClaimListedTip || ClaimKnownTip == ClaimListedTip {
		t.Fatalf("KnownTip %d, ListedTip %d", KnownTip(), ListedTip())
	}
}
