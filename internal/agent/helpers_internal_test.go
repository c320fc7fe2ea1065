package agent

import (
	"log/slog"
	"time"
)

var testT0 = time.Date(2025, 6, 2, 9, 0, 0, 0, time.UTC)

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
