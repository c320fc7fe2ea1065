package signedurl_test

import (
	"errors"
	"net/url"
	"testing"
	"time"

	"github.com/updraft/updraft/internal/clock"
	"github.com/updraft/updraft/internal/signedurl"
)

// FuzzVerify feeds arbitrary query strings and artifact ids to Verify. It
// must not panic, must fail only with one of its four errors, and may accept
// only what the same key signs to exactly the signature presented.
func FuzzVerify(f *testing.F) {
	c := clock.NewFake(t0)
	s, err := signedurl.NewSigner(c, key1, key2)
	if err != nil {
		f.Fatal(err)
	}
	good, err := s.Sign(param, t0.Add(time.Hour))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good, param.Artifact)
	f.Fuzz(func(t *testing.T, rawQuery, artifact string) {
		q, err := url.ParseQuery(rawQuery)
		if err != nil {
			return // the server's router drops such queries too
		}
		claims, err := s.Verify(q, artifact)
		if err != nil {
			for _, known := range []error{signedurl.ErrMalformed, signedurl.ErrUnknownKey, signedurl.ErrBadSignature, signedurl.ErrExpired} {
				if errors.Is(err, known) {
					return
				}
			}
			t.Fatalf("Verify error %v is none of the documented ones", err)
		}
		if claims.Artifact != artifact || claims.Device != q.Get("d") || claims.Tenant != q.Get("t") {
			t.Fatalf("claims %+v do not match the query %q and artifact %q", claims, rawQuery, artifact)
		}
		if !claims.Expires.After(c.Now()) {
			t.Fatalf("accepted an expired URL: %+v", claims)
		}
		key := key1
		if claims.KeyID == key2.ID {
			key = key2
		}
		re, err := signedurl.NewSigner(c, key)
		if err != nil {
			t.Fatal(err)
		}
		again, err := re.Sign(claims.Params, claims.Expires)
		if err != nil {
			t.Fatalf("cannot re-sign accepted claims %+v: %v", claims, err)
		}
		want, _ := url.ParseQuery(again)
		if want.Get("s") != q.Get("s") {
			t.Fatalf("accepted signature %q, but the claims sign to %q", q.Get("s"), want.Get("s"))
		}
	})
}
