
3f2a9cstt Š-
	bad_audio The recording could not be read.