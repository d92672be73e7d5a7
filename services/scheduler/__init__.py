"""The scheduler: closes each billing month once it has ended, catching up months it missed."""
