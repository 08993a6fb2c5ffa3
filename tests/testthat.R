library(testthat)
library(streamlyr)

test_check("streamlyr")
