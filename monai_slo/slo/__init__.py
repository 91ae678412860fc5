"""SLO math: availability, error budget and burn rate as pure functions; alert windows."""
