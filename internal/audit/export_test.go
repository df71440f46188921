package audit

// GroupCommits answers how many group commits s made and how many appends
// they wrote.
func GroupCommits(s *Service) (batches, appends int64) {
	return s.commits.batches.Load(), s.commits.appends.Load()
}
