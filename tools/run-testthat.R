# Runs tests/testthat against the installed package and ends with the plain
# "testthat: N passed, N failed, N skipped" line; exits 1 on any failure.
library(testthat)
# Snapshot tests (error messages) run here as in a developer's session.
Sys.setenv(NOT_CRAN = "true")
results <- as.data.frame(test_dir(
  "tests/testthat",
  package = "streamlyr",
  load_package = "installed",
  reporter = ProgressReporter$new(show_praise = FALSE),
  stop_on_failure = FALSE
))
failed <- sum(results$failed) + sum(results$error)
skipped <- sum(results$skipped)
passed <- sum(results$nb) - sum(results$failed) - skipped - sum(results$warning)
cat(sprintf("\ntestthat: %d passed, %d failed, %d skipped\n", passed, failed, skipped))
quit(status = if (failed > 0) 1 else 0)
