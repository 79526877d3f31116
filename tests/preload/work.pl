# A perl workload for the preload test: hashes, arrays, strings, regexes, sort.
use strict; use warnings;
my %h; my @a;
for my $i (1..200000) { $h{"k$i"} = "v" x ($i % 40); push @a, $i * 7 % 1009; }
my $s = join(",", sort { $a <=> $b } @a);
my $n = () = $s =~ /(\d{3})/g;
my @keys = grep { /7$/ } keys %h;
delete $h{$_} for @keys;
printf "%d %d %d %d\n", scalar(keys %h), length($s), $n, scalar(@keys);
