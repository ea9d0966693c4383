module emu.test/gothreads

go 1.19
