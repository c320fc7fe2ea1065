package auth

import (
	"errors"
	"strings"
	"testing"
)

func TestGenerateAPIToken(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for range 100 {
		nt, err := GenerateAPIToken()
		if err != nil {
			t.Fatal(err)
		}
		id, secret, err := ParseAPIToken(nt.Token)
		if err != nil {
			t.Fatalf("ParseAPIToken(%q): %v", nt.Token, err)
		}
		if id != nt.ID || !ValidAPITokenID(id) {
			t.Errorf("id %q, want %q", id, nt.ID)
		}
		if len(secret) != APITokenSecretLen || strings.Contains(nt.SecretHash, secret) {
			t.Errorf("secret %q / hash %q", secret, nt.SecretHash)
		}
		if err := CheckAPITokenSecret(secret, nt.SecretHash); err != nil {
			t.Errorf("CheckAPITokenSecret: %v", err)
		}
		if seen[nt.Token] {
			t.Fatalf("duplicate token %q", nt.Token)
		}
		seen[nt.Token] = true
	}
}

func TestParseAPIToken(t *testing.T) {
	t.Parallel()
	const good = "updraft_ab12cd34_AbCdEfGhIjKlMnOpQrStUvWxYz012345"
	id, secret, err := ParseAPIToken(good)
	if err != nil || id != "ab12cd34" || secret != "AbCdEfGhIjKlMnOpQrStUvWxYz012345" {
		t.Fatalf("ParseAPIToken(good) = %q, %q, %v", id, secret, err)
	}
	bad := map[string]string{
		"empty":             "",
		"no prefix":         strings.TrimPrefix(good, "updraft_"),
		"other prefix":      "upgrade_" + good[8:],
		"upper-case prefix": "UPDRAFT_" + good[8:],
		"upper-case id":     "updraft_AB12CD34_" + good[17:],
		"short id":          "updraft_ab12cd3_" + good[17:] + "x",
		"short secret":      good[:len(good)-1],
		"long secret":       good + "x",
		"dash separator":    "updraft_ab12cd34-" + good[17:],
		"secret symbol":     good[:len(good)-1] + "!",
		"secret underscore": good[:len(good)-1] + "_",
		"bearer prefix":     "Bearer " + good,
		"trailing newline":  good[:len(good)-1] + "\n",
		"device token":      "udt1.k1.e30.AAAA",
	}
	for name, tok := range bad {
		if _, _, err := ParseAPIToken(tok); !errors.Is(err, ErrMalformedAPIToken) {
			t.Errorf("%s: ParseAPIToken(%q) = %v, want ErrMalformedAPIToken", name, tok, err)
		}
	}
}

func TestCheckAPITokenSecret(t *testing.T) {
	t.Parallel()
	const secret = "AbCdEfGhIjKlMnOpQrStUvWxYz012345"
	// sha256 of the secret, computed with sha256sum.
	const hash = "0ab93262e08b4a300dafed0e5f6e809388300db11ea5f0039eef5dfd2c322f41"
	got := HashAPITokenSecret(secret)
	if got != hash {
		t.Fatalf("HashAPITokenSecret = %s, want %s", got, hash)
	}
	cases := []struct {
		name, secret, hash string
		ok                 bool
	}{
		{"match", secret, hash, true},
		{"other secret", "AbCdEfGhIjKlMnOpQrStUvWxYz012346", hash, false},
		{"empty secret", "", hash, false},
		{"upper-case hash", secret, strings.ToUpper(hash), false},
		{"short hash", secret, hash[:32], false},
		{"empty hash", secret, "", false},
	}
	for _, tc := range cases {
		err := CheckAPITokenSecret(tc.secret, tc.hash)
		if tc.ok != (err == nil) || (!tc.ok && !errors.Is(err, ErrAPITokenMismatch)) {
			t.Errorf("%s: CheckAPITokenSecret = %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}

func TestValidAPITokenID(t *testing.T) {
	t.Parallel()
	for id, want := range map[string]bool{"ab12cd34": true, "AB12CD34": false, "ab12cd3": false, "ab12cd345": false, "ab12-d34": false, "": false} {
		if got := ValidAPITokenID(id); got != want {
			t.Errorf("ValidAPITokenID(%q) = %v, want %v", id, got, want)
		}
	}
}

func FuzzParseAPIToken(f *testing.F) {
	f.Add("updraft_ab12cd34_AbCdEfGhIjKlMnOpQrStUvWxYz012345")
	f.Fuzz(func(t *testing.T, tok string) {
		id, secret, err := ParseAPIToken(tok)
		if err != nil {
			if !errors.Is(err, ErrMalformedAPIToken) {
				t.Fatalf("unclassified error: %v", err)
			}
			return
		}
		if APITokenPrefix+id+"_"+secret != tok || !ValidAPITokenID(id) || len(secret) != APITokenSecretLen {
			t.Fatalf("ParseAPIToken(%q) = %q, %q", tok, id, secret)
		}
	})
}
