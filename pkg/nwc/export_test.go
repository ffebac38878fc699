package nwc

// SetIgnoredHook lets tests observe requests the service drops without answering.
func SetIgnoredHook(s *Service, f func(id, reason string)) { s.ignored = f }
