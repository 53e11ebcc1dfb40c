"""Hand-written solutions of three task families in all 20 languages: the correct one and a realistic bug each.

`code_tasks.py` merges these into its families, so procedural code queries exist in every language the translator
(multipl_e.py) covers. Each solution is a complete program part in the shape the language's MultiPL-E prompt asks
for: Java, C# and Scala functions are static members of `Problem`; Go files are `package main`; PHP opens with
`<?php`; Racket with `#lang racket`. Names follow `multipl_e.entry_name` (sumToN in Java, SumToN in C#, ...).
"""


def _code(text: str) -> str:
    return text.strip("\n") + "\n"


SUM_TO_N = {
    "typescript": {
        "correct": _code("""
function sum_to_n(n: number): number {
  let total = 0;
  for (let i = 1; i <= n; i++) total += i;
  return total;
}
"""),
        "off_by_one": _code("""
function sum_to_n(n: number): number {
  let total = 0;
  for (let i = 1; i < n; i++) total += i;
  return total;
}
"""),
        "type_error": _code("""
function sum_to_n(n: number): number {
  let total: string = 0;
  for (let i = 1; i <= n; i++) total += i;
  return total;
}
"""),
    },
    "c": {
        "correct": _code("""
long sum_to_n(long n) {
    long total = 0;
    for (long i = 1; i <= n; i++) total += i;
    return total;
}
"""),
        "off_by_one": _code("""
long sum_to_n(long n) {
    long total = 0;
    for (long i = 1; i < n; i++) total += i;
    return total;
}
"""),
    },
    "java": {
        "correct": _code("""
class Problem {
    public static long sumToN(long n) {
        long total = 0;
        for (long i = 1; i <= n; i++) total += i;
        return total;
    }
}
"""),
        "off_by_one": _code("""
class Problem {
    public static long sumToN(long n) {
        long total = 0;
        for (long i = 1; i < n; i++) total += i;
        return total;
    }
}
"""),
        "type_error": _code("""
class Problem {
    public static long sumToN(long n) {
        String total = 0;
        for (long i = 1; i <= n; i++) total += i;
        return total;
    }
}
"""),
    },
    "csharp": {
        "correct": _code("""
class Problem {
    public static long SumToN(long n) {
        long total = 0;
        for (long i = 1; i <= n; i++) total += i;
        return total;
    }
}
"""),
        "off_by_one": _code("""
class Problem {
    public static long SumToN(long n) {
        long total = 0;
        for (long i = 1; i < n; i++) total += i;
        return total;
    }
}
"""),
    },
    "go": {
        "correct": _code("""
package main

func sum_to_n(n int) int {
	total := 0
	for i := 1; i <= n; i++ {
		total += i
	}
	return total
}
"""),
        "off_by_one": _code("""
package main

func sum_to_n(n int) int {
	total := 0
	for i := 1; i < n; i++ {
		total += i
	}
	return total
}
"""),
        "unused_variable": _code("""
package main

func sum_to_n(n int) int {
	total := 0
	unused := 1
	for i := 1; i <= n; i++ {
		total += i
	}
	return total
}
"""),
    },
    "rust": {
        "correct": _code("""
fn sum_to_n(n: isize) -> isize {
    let mut total = 0;
    for i in 1..=n {
        total += i;
    }
    total
}
"""),
        "off_by_one": _code("""
fn sum_to_n(n: isize) -> isize {
    let mut total = 0;
    for i in 1..n {
        total += i;
    }
    total
}
"""),
        "borrow_error": _code("""
fn sum_to_n(n: isize) -> isize {
    let total = 0;
    for i in 1..=n {
        total += i;
    }
    total
}
"""),
    },
    "php": {
        "correct": _code("""
<?php
function sum_to_n($n) {
    $total = 0;
    for ($i = 1; $i <= $n; $i++) $total += $i;
    return $total;
}
"""),
        "off_by_one": _code("""
<?php
function sum_to_n($n) {
    $total = 0;
    for ($i = 1; $i < $n; $i++) $total += $i;
    return $total;
}
"""),
    },
    "ruby": {
        "correct": _code("""
def sum_to_n(n)
  (1..n).sum
end
"""),
        "off_by_one": _code("""
def sum_to_n(n)
  (1...n).sum
end
"""),
        "syntax_error": _code("""
def sum_to_n(n)
  (1..n).each do |i|
end
"""),
    },
    "perl": {
        "correct": _code("""
sub sum_to_n {
    my ($n) = @_;
    my $total = 0;
    $total += $_ for 1 .. $n;
    return $total;
}
"""),
        "off_by_one": _code("""
sub sum_to_n {
    my ($n) = @_;
    my $total = 0;
    $total += $_ for 1 .. $n - 1;
    return $total;
}
"""),
    },
    "lua": {
        "correct": _code("""
local function sum_to_n(n)
  local total = 0
  for i = 1, n do
    total = total + i
  end
  return total
end
"""),
        "off_by_one": _code("""
local function sum_to_n(n)
  local total = 0
  for i = 1, n - 1 do
    total = total + i
  end
  return total
end
"""),
    },
    "r": {
        "correct": _code("""
sum_to_n <- function(n) {
  total <- 0
  for (i in seq_len(n)) total <- total + i
  total
}
"""),
        "off_by_one": _code("""
sum_to_n <- function(n) {
  total <- 0
  for (i in seq_len(n - 1)) total <- total + i
  total
}
"""),
    },
    "scala": {
        "correct": _code("""
object Problem {
    def sumToN(n : Long) : Long = {
        var total = 0L
        for (i <- 1L to n) total += i
        total
    }
}
"""),
        "off_by_one": _code("""
object Problem {
    def sumToN(n : Long) : Long = {
        var total = 0L
        for (i <- 1L until n) total += i
        total
    }
}
"""),
    },
    "kotlin": {
        "correct": _code("""
fun sumToN(n: Int): Int {
    var total = 0
    for (i in 1..n) total += i
    return total
}
"""),
        "off_by_one": _code("""
fun sumToN(n: Int): Int {
    var total = 0
    for (i in 1 until n) total += i
    return total
}
"""),
    },
    "bash": {
        "correct": _code("""
sum_to_n() {
    local total=0
    for ((i = 1; i <= $1; i++)); do
        total=$((total + i))
    done
    echo "$total"
}
"""),
        "off_by_one": _code("""
sum_to_n() {
    local total=0
    for ((i = 1; i < $1; i++)); do
        total=$((total + i))
    done
    echo "$total"
}
"""),
    },
    "haskell": {
        "correct": _code("""
sumToN :: Int -> Int
sumToN n = sum [1..n]
"""),
        "off_by_one": _code("""
sumToN :: Int -> Int
sumToN n = sum [1..n - 1]
"""),
        "type_error": _code("""
sumToN :: Int -> Int
sumToN n = show (sum [1..n])
"""),
    },
    "ocaml": {
        "correct": _code("""
let rec sum_to_n (n : int) : int =
  if n <= 0 then 0 else n + sum_to_n (n - 1)
"""),
        "off_by_one": _code("""
let rec sum_to_n (n : int) : int =
  if n <= 1 then 0 else n + sum_to_n (n - 1)
"""),
    },
    "racket": {
        "correct": _code("""
#lang racket

(define (sum_to_n n)
  (for/sum ([i (in-range 1 (+ n 1))]) i))
"""),
        "off_by_one": _code("""
#lang racket

(define (sum_to_n n)
  (for/sum ([i (in-range 1 n)]) i))
"""),
    },
}

COUNT_VOWELS = {
    "typescript": {
        "correct": _code("""
function count_vowels(s: string): number {
  return [...s.toLowerCase()].filter(c => "aeiou".includes(c)).length;
}
"""),
        "case_sensitive": _code("""
function count_vowels(s: string): number {
  return [...s].filter(c => "aeiou".includes(c)).length;
}
"""),
    },
    "c": {
        "correct": _code("""
#include <ctype.h>
#include <string.h>

long count_vowels(const char* s) {
    long count = 0;
    for (; *s; s++) if (strchr("aeiou", tolower((unsigned char)*s))) count++;
    return count;
}
"""),
        "case_sensitive": _code("""
#include <string.h>

long count_vowels(const char* s) {
    long count = 0;
    for (; *s; s++) if (strchr("aeiou", *s)) count++;
    return count;
}
"""),
    },
    "cpp": {
        "correct": _code("""
#include <cctype>
#include <string>

long count_vowels(std::string s) {
    long count = 0;
    for (char c : s) if (std::string("aeiou").find(std::tolower(c)) != std::string::npos) count++;
    return count;
}
"""),
        "case_sensitive": _code("""
#include <string>

long count_vowels(std::string s) {
    long count = 0;
    for (char c : s) if (std::string("aeiou").find(c) != std::string::npos) count++;
    return count;
}
"""),
    },
    "java": {
        "correct": _code("""
class Problem {
    public static long countVowels(String s) {
        long count = 0;
        for (char c : s.toLowerCase().toCharArray()) if ("aeiou".indexOf(c) >= 0) count++;
        return count;
    }
}
"""),
        "case_sensitive": _code("""
class Problem {
    public static long countVowels(String s) {
        long count = 0;
        for (char c : s.toCharArray()) if ("aeiou".indexOf(c) >= 0) count++;
        return count;
    }
}
"""),
    },
    "csharp": {
        "correct": _code("""
class Problem {
    public static long CountVowels(string s) {
        long count = 0;
        foreach (char c in s.ToLower()) if ("aeiou".IndexOf(c) >= 0) count++;
        return count;
    }
}
"""),
        "case_sensitive": _code("""
class Problem {
    public static long CountVowels(string s) {
        long count = 0;
        foreach (char c in s) if ("aeiou".IndexOf(c) >= 0) count++;
        return count;
    }
}
"""),
    },
    "go": {
        "correct": _code("""
package main

import "strings"

func count_vowels(s string) int {
	count := 0
	for _, c := range strings.ToLower(s) {
		if strings.ContainsRune("aeiou", c) {
			count++
		}
	}
	return count
}
"""),
        "case_sensitive": _code("""
package main

import "strings"

func count_vowels(s string) int {
	count := 0
	for _, c := range s {
		if strings.ContainsRune("aeiou", c) {
			count++
		}
	}
	return count
}
"""),
    },
    "rust": {
        "correct": _code("""
fn count_vowels(s: String) -> isize {
    s.to_lowercase().chars().filter(|c| "aeiou".contains(*c)).count() as isize
}
"""),
        "case_sensitive": _code("""
fn count_vowels(s: String) -> isize {
    s.chars().filter(|c| "aeiou".contains(*c)).count() as isize
}
"""),
    },
    "php": {
        "correct": _code("""
<?php
function count_vowels($s) {
    return preg_match_all('/[aeiou]/i', $s);
}
"""),
        "case_sensitive": _code("""
<?php
function count_vowels($s) {
    return preg_match_all('/[aeiou]/', $s);
}
"""),
    },
    "ruby": {
        "correct": _code("""
def count_vowels(s)
  s.downcase.count("aeiou")
end
"""),
        "case_sensitive": _code("""
def count_vowels(s)
  s.count("aeiou")
end
"""),
    },
    "perl": {
        "correct": _code("""
sub count_vowels {
    my ($s) = @_;
    my $count = () = $s =~ /[aeiou]/gi;
    return $count;
}
"""),
        "case_sensitive": _code("""
sub count_vowels {
    my ($s) = @_;
    my $count = () = $s =~ /[aeiou]/g;
    return $count;
}
"""),
    },
    "lua": {
        "correct": _code("""
local function count_vowels(s)
  local _, count = string.gsub(string.lower(s), "[aeiou]", "")
  return count
end
"""),
        "case_sensitive": _code("""
local function count_vowels(s)
  local _, count = string.gsub(s, "[aeiou]", "")
  return count
end
"""),
    },
    "r": {
        "correct": _code("""
count_vowels <- function(s) {
  chars <- strsplit(tolower(s), "")[[1]]
  sum(chars %in% c("a", "e", "i", "o", "u"))
}
"""),
        "case_sensitive": _code("""
count_vowels <- function(s) {
  chars <- strsplit(s, "")[[1]]
  sum(chars %in% c("a", "e", "i", "o", "u"))
}
"""),
    },
    "scala": {
        "correct": _code("""
object Problem {
    def countVowels(s : String) : Long = {
        s.toLowerCase.count(c => "aeiou".contains(c)).toLong
    }
}
"""),
        "case_sensitive": _code("""
object Problem {
    def countVowels(s : String) : Long = {
        s.count(c => "aeiou".contains(c)).toLong
    }
}
"""),
    },
    "kotlin": {
        "correct": _code("""
fun countVowels(s: String): Int {
    return s.toLowerCase().count { it in "aeiou" }
}
"""),
        "case_sensitive": _code("""
fun countVowels(s: String): Int {
    return s.count { it in "aeiou" }
}
"""),
    },
    "bash": {
        "correct": _code("""
count_vowels() {
    local s="${1,,}"
    local only="${s//[^aeiou]/}"
    echo "${#only}"
}
"""),
        "case_sensitive": _code("""
count_vowels() {
    local only="${1//[^aeiou]/}"
    echo "${#only}"
}
"""),
    },
    "haskell": {
        "correct": _code("""
import Data.Char (toLower)

countVowels :: String -> Int
countVowels s = length (filter (`elem` "aeiou") (map toLower s))
"""),
        "case_sensitive": _code("""
countVowels :: String -> Int
countVowels s = length (filter (`elem` "aeiou") s)
"""),
    },
    "ocaml": {
        "correct": _code("""
let count_vowels (s : string) : int =
  let n = ref 0 in
  String.iter (fun c -> if String.contains "aeiou" (Char.lowercase_ascii c) then incr n) s;
  !n
"""),
        "case_sensitive": _code("""
let count_vowels (s : string) : int =
  let n = ref 0 in
  String.iter (fun c -> if String.contains "aeiou" c then incr n) s;
  !n
"""),
    },
    "racket": {
        "correct": _code("""
#lang racket

(define (count_vowels s)
  (for/sum ([c (string-downcase s)]) (if (memv c (string->list "aeiou")) 1 0)))
"""),
        "case_sensitive": _code("""
#lang racket

(define (count_vowels s)
  (for/sum ([c s]) (if (memv c (string->list "aeiou")) 1 0)))
"""),
    },
}

EVENS = {
    "python": {
        "correct": _code("""
from typing import List


def evens(xs: List[int]) -> List[int]:
    return [x for x in xs if x % 2 == 0]
"""),
        "wrong_parity": _code("""
from typing import List


def evens(xs: List[int]) -> List[int]:
    return [x for x in xs if x % 2 == 1]
"""),
        "drops_last": _code("""
from typing import List


def evens(xs: List[int]) -> List[int]:
    return [x for x in xs[:-1] if x % 2 == 0]
"""),
    },
    "javascript": {
        "correct": _code("""
function evens(xs) {
  return xs.filter(x => x % 2 === 0);
}
"""),
        "wrong_parity": _code("""
function evens(xs) {
  return xs.filter(x => x % 2 === 1);
}
"""),
    },
    "typescript": {
        "correct": _code("""
function evens(xs: number[]): number[] {
  return xs.filter(x => x % 2 === 0);
}
"""),
        "wrong_parity": _code("""
function evens(xs: number[]): number[] {
  return xs.filter(x => x % 2 === 1);
}
"""),
    },
    "cpp": {
        "correct": _code("""
#include <vector>

std::vector<long> evens(std::vector<long> xs) {
    std::vector<long> out;
    for (long x : xs) if (x % 2 == 0) out.push_back(x);
    return out;
}
"""),
        "wrong_parity": _code("""
#include <vector>

std::vector<long> evens(std::vector<long> xs) {
    std::vector<long> out;
    for (long x : xs) if (x % 2 != 0) out.push_back(x);
    return out;
}
"""),
    },
    "java": {
        "correct": _code("""
import java.util.*;

class Problem {
    public static ArrayList<Long> evens(ArrayList<Long> xs) {
        ArrayList<Long> out = new ArrayList<Long>();
        for (long x : xs) if (x % 2 == 0) out.add(x);
        return out;
    }
}
"""),
        "wrong_parity": _code("""
import java.util.*;

class Problem {
    public static ArrayList<Long> evens(ArrayList<Long> xs) {
        ArrayList<Long> out = new ArrayList<Long>();
        for (long x : xs) if (x % 2 != 0) out.add(x);
        return out;
    }
}
"""),
    },
    "csharp": {
        "correct": _code("""
using System.Collections.Generic;

class Problem {
    public static List<long> Evens(List<long> xs) {
        var output = new List<long>();
        foreach (long x in xs) if (x % 2 == 0) output.Add(x);
        return output;
    }
}
"""),
        "wrong_parity": _code("""
using System.Collections.Generic;

class Problem {
    public static List<long> Evens(List<long> xs) {
        var output = new List<long>();
        foreach (long x in xs) if (x % 2 != 0) output.Add(x);
        return output;
    }
}
"""),
    },
    "go": {
        "correct": _code("""
package main

func evens(xs []int) []int {
	out := []int{}
	for _, x := range xs {
		if x%2 == 0 {
			out = append(out, x)
		}
	}
	return out
}
"""),
        "wrong_parity": _code("""
package main

func evens(xs []int) []int {
	out := []int{}
	for _, x := range xs {
		if x%2 != 0 {
			out = append(out, x)
		}
	}
	return out
}
"""),
    },
    "rust": {
        "correct": _code("""
fn evens(xs: Vec<isize>) -> Vec<isize> {
    xs.into_iter().filter(|x| x % 2 == 0).collect()
}
"""),
        "wrong_parity": _code("""
fn evens(xs: Vec<isize>) -> Vec<isize> {
    xs.into_iter().filter(|x| x % 2 != 0).collect()
}
"""),
    },
    "php": {
        "correct": _code("""
<?php
function evens($xs) {
    return array_values(array_filter($xs, fn($x) => $x % 2 == 0));
}
"""),
        "keeps_keys": _code("""
<?php
function evens($xs) {
    return array_filter($xs, fn($x) => $x % 2 == 0);
}
"""),
    },
    "ruby": {
        "correct": _code("""
def evens(xs)
  xs.select(&:even?)
end
"""),
        "wrong_parity": _code("""
def evens(xs)
  xs.select(&:odd?)
end
"""),
    },
    "perl": {
        "correct": _code("""
sub evens {
    my ($xs) = @_;
    return [grep { $_ % 2 == 0 } @$xs];
}
"""),
        "wrong_parity": _code("""
sub evens {
    my ($xs) = @_;
    return [grep { $_ % 2 != 0 } @$xs];
}
"""),
    },
    "lua": {
        "correct": _code("""
local function evens(xs)
  local out = {}
  for _, x in ipairs(xs) do
    if x % 2 == 0 then table.insert(out, x) end
  end
  return out
end
"""),
        "wrong_parity": _code("""
local function evens(xs)
  local out = {}
  for _, x in ipairs(xs) do
    if x % 2 ~= 0 then table.insert(out, x) end
  end
  return out
end
"""),
    },
    "r": {
        "correct": _code("""
evens <- function(xs) {
  xs[xs %% 2 == 0]
}
"""),
        "wrong_parity": _code("""
evens <- function(xs) {
  xs[xs %% 2 != 0]
}
"""),
    },
    "scala": {
        "correct": _code("""
object Problem {
    def evens(xs : List[Long]) : List[Long] = {
        xs.filter(x => x % 2 == 0)
    }
}
"""),
        "wrong_parity": _code("""
object Problem {
    def evens(xs : List[Long]) : List[Long] = {
        xs.filter(x => x % 2 != 0)
    }
}
"""),
    },
    "kotlin": {
        "correct": _code("""
fun evens(xs: MutableList<Int>): MutableList<Int> {
    return xs.filter { it % 2 == 0 }.toMutableList()
}
"""),
        "wrong_parity": _code("""
fun evens(xs: MutableList<Int>): MutableList<Int> {
    return xs.filter { it % 2 != 0 }.toMutableList()
}
"""),
    },
    "bash": {
        "correct": _code("""
evens() {
    local out=()
    for x in $1; do
        if (( x % 2 == 0 )); then out+=("$x"); fi
    done
    echo "${out[*]}"
}
"""),
        "wrong_parity": _code("""
evens() {
    local out=()
    for x in $1; do
        if (( x % 2 != 0 )); then out+=("$x"); fi
    done
    echo "${out[*]}"
}
"""),
    },
    "haskell": {
        "correct": _code("""
evens :: [Int] -> [Int]
evens xs = filter even xs
"""),
        "wrong_parity": _code("""
evens :: [Int] -> [Int]
evens xs = filter odd xs
"""),
    },
    "ocaml": {
        "correct": _code("""
let evens (xs : int list) : int list =
  List.filter (fun x -> x mod 2 = 0) xs
"""),
        "wrong_parity": _code("""
let evens (xs : int list) : int list =
  List.filter (fun x -> x mod 2 <> 0) xs
"""),
    },
    "racket": {
        "correct": _code("""
#lang racket

(define (evens xs)
  (filter even? xs))
"""),
        "wrong_parity": _code("""
#lang racket

(define (evens xs)
  (filter odd? xs))
"""),
    },
}

SOLUTIONS = {"sum_to_n": SUM_TO_N, "count_vowels": COUNT_VOWELS, "evens": EVENS}
