
3f2a9csess-1 €Ð•ÿ¼1(ÿÿèƒ±Þ:
audio/webmBwhen are you openZ
userhelloj0Z
	assistantHello!j0¢

queuedÂava