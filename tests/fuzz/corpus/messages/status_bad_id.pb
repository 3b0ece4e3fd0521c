
../../etc/passwdavatar RRIFFZ	audio/wav