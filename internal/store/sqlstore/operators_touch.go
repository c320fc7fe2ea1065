package sqlstore

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
)

// touchTokenBatch is how many tokens one TouchAPITokens statement updates.
const touchTokenBatch = 500

// TouchAPITokens implements store.Operators: one UPDATE per 500 tokens, in
// one transaction, in id order (so concurrent flushes from several
// replicas lock rows in the same order and cannot deadlock on PostgreSQL).
func (s *Store) TouchAPITokens(ctx context.Context, used map[string]time.Time) error {
	ids := make([]string, 0, len(used))
	for id, at := range used {
		if !at.IsZero() {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	slices.Sort(ids)
	err := s.tx(ctx, func(t *txn) error {
		for chunk := range slices.Chunk(ids, touchTokenBatch) {
			args := make([]any, 0, 2*len(chunk))
			for _, id := range chunk {
				args = append(args, id, micros(used[id]))
			}
			q := `WITH used (id, at) AS (VALUES ` + strings.TrimSuffix(strings.Repeat(`(?, CAST(? AS BIGINT)), `, len(chunk)), ", ") + `)
				UPDATE api_tokens SET last_used_at = used.at FROM used
				WHERE api_tokens.id = used.id
				AND (api_tokens.last_used_at IS NULL OR api_tokens.last_used_at < used.at)`
			if _, err := t.exec(ctx, q, args...); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("touch api tokens: %w", err)
	}
	return nil
}
