package agent

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/updraft/updraft/internal/verifier"
)

// newStream returns the verifying stream for t, resumed from state. In
// unsigned mode the verifier package's stream still checks the length and
// SHA-256 the check-in named.
func (a *Agent) newStream(t *verifier.Target, state []byte) (verifier.Stream, error) {
	v, err := a.openVerifier(context.Background())
	if err != nil {
		return nil, err
	}
	if v != nil {
		return v.NewStream(t, state)
	}
	return verifier.NewStream(t, state)
}

// openVerifier returns the verifier, opening it through cfg.NewVerifier the
// first time (once the device knows its id); nil in unsigned mode.
func (a *Agent) openVerifier(ctx context.Context) (verifier.Verifier, error) {
	if a.verifier == nil && a.cfg.NewVerifier != nil && a.st.DeviceID != "" {
		v, err := a.cfg.NewVerifier(ctx, a.st.DeviceID, metadataFetcher{a})
		if err != nil {
			return nil, err
		}
		a.verifier = v
	}
	return a.verifier, nil
}

// metadataFetcher fetches TUF metadata for the verifier through the device
// API, with the device token: GET <server><MetadataPath><name>.
type metadataFetcher struct{ a *Agent }

// Get implements verifier.Fetcher.
func (f metadataFetcher) Get(ctx context.Context, name string, maxLength int64) ([]byte, error) {
	a := f.a
	u := a.cfg.ServerURL + a.cfg.MetadataPath + url.PathEscape(name)
	ctx, cancel := context.WithTimeout(ctx, a.cfg.Timing.RequestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	if a.token != "" {
		req.Header.Set("Authorization", "Bearer "+a.token)
	}
	resp, err := a.cfg.HTTP.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, &metadata.ErrDownloadHTTP{StatusCode: resp.StatusCode, URL: u}
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxLength))
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", name, err)
	}
	return b, nil
}
