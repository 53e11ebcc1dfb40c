"""Programs for tests/sandbox/test_languages.py, in every language's own idiom: hello world, a program its static
check refuses, and the attack corpus. Placeholders: @PORT@ (a TCP listener on the host's loopback), @TARGET@ (a
host path outside the working directory to write), @SECRET_FILE@ (a world-readable host file), @MARKER@ (a sleep
duration that marks an orphan's command line). A missing entry means the language cannot express the attack; the
reason is in NOT_EXPRESSIBLE."""

HELLO = {
    "python": 'print("hello")',
    "javascript": 'console.log("hello")',
    "typescript": 'const greeting: string = "hello";\nconsole.log(greeting);',
    "c": '#include <stdio.h>\nint main(void) { printf("hello\\n"); return 0; }',
    "cpp": '#include <iostream>\nint main() { std::cout << "hello\\n"; }',
    "java": 'public class Main { public static void main(String[] a) { System.out.println("hello"); } }',
    "csharp": 'using System;\nclass Program { static void Main() { Console.WriteLine("hello"); } }',
    "go": 'package main\nimport "fmt"\nfunc main() { fmt.Println("hello") }',
    "rust": 'fn main() { println!("hello"); }',
    "php": '<?php\necho "hello\\n";',
    "ruby": 'puts "hello"',
    "perl": 'print "hello\\n";',
    "lua": 'print("hello")',
    "r": 'cat("hello\\n")',
    "scala": 'object Main { def main(args: Array[String]): Unit = println("hello") }',
    "kotlin": 'fun main() { println("hello") }',
    "bash": 'echo hello',
    "haskell": 'main :: IO ()\nmain = putStrLn "hello"',
    "ocaml": 'let () = print_endline "hello"',
    "racket": '#lang racket/base\n(displayln "hello")',
}

# (source, text the diagnostic must contain): a syntax or type error the static check refuses
STATIC_ERROR = {
    "python": ("def f(:\n    pass\nprint('ran')", "SyntaxError"),
    "javascript": ("console.log('ran');\nfunction f( {", "SyntaxError"),
    "typescript": ('console.log("ran");\nconst n: number = "text";', "TS2322"),
    "c": ('#include <stdio.h>\nint main(void) { printf("ran\\n"); return undefined_name; }', "undefined_name"),
    "cpp": ("int main() { return undefined_name; }", "undefined_name"),
    "java": ('public class Main { public static void main(String[] a) { int x = "text"; } }', "incompatible types"),
    "csharp": ('class Program { static void Main() { int x = "text"; } }', "CS0029"),
    "go": ('package main\nimport "fmt"\nfunc main() { fmt.Println("ran"); var x int = "text" }', "cannot use"),
    "rust": ('fn main() { println!("ran"); let x: i32 = "text"; }', "mismatched types"),
    "php": ('<?php\necho "ran\\n";\nfunction f( {', "syntax error"),
    "ruby": ('puts "ran"\ndef f(\n', "syntax error"),
    "perl": ('print "ran\\n";\nsub f {', "Missing right curly"),
    "lua": ('print("ran")\nfunction f(', "expected"),
    "r": ('cat("ran\\n")\nf <- function( {', "unexpected"),
    "scala": ('object Main { def main(args: Array[String]): Unit = { val x: Int = "text" } }', "type mismatch"),
    "kotlin": ('fun main() { val x: Int = "text" }', "type mismatch"),
    "bash": ('echo ran\nif then fi', "syntax error"),
    "haskell": ('main :: IO ()\nmain = putStrLn (1 + "text")', "No instance"),
    "ocaml": ('let () = print_endline "ran"\nlet x : int = "text"', "Error"),
    "racket": ('#lang racket/base\n(displayln "ran")\n(undefined-name 1)', "unbound identifier"),
}

FORK_BOMB = {
    "python": "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n",
    "javascript": "const cp = require('child_process');\n"
                  "for (;;) { try { cp.spawn('sleep', ['100']); } catch (e) {} }\n",
    "typescript": "const cp = require('child_process');\n"
                  "for (;;) { try { cp.spawn('sleep', ['100']); } catch (e) {} }\n",
    "c": "#include <unistd.h>\nint main(void) { for (;;) fork(); }\n",
    "cpp": "#include <unistd.h>\nint main() { for (;;) fork(); }\n",
    "java": "public class Main { public static void main(String[] a) {\n"
            "  for (;;) { try { new ProcessBuilder(\"sleep\", \"100\").start(); } catch (Exception e) {}\n"
            "    try { new Thread(() -> { try { Thread.sleep(100000); } catch (Exception e) {} }).start(); }\n"
            "    catch (Throwable e) {} } } }\n",
    "csharp": "using System.Diagnostics;\nclass Program { static void Main() {\n"
              "  for (;;) { try { Process.Start(\"sleep\", \"100\"); } catch (System.Exception) {} } } }\n",
    "go": "package main\nimport \"os/exec\"\n"
          "func main() { for { exec.Command(\"sleep\", \"100\").Start() } }\n",
    "rust": "use std::process::Command;\n"
            "fn main() { loop { let _ = Command::new(\"sleep\").arg(\"100\").spawn(); } }\n",
    "php": "<?php\nwhile (true) { pcntl_fork(); }\n",
    "ruby": "loop { begin; fork; rescue StandardError; end }\n",
    "perl": "1 while 1 + fork // 1;\n",
    "lua": "local children = {}\nwhile true do\n  local ok, p = pcall(io.popen, 'sleep 100')\n"
           "  if ok and p then children[#children + 1] = p end\nend\n",
    "r": "repeat try(parallel::mcparallel(Sys.sleep(100)), silent = TRUE)\n",
    "scala": "object Main { def main(args: Array[String]): Unit = while (true) {\n"
             "  try { new ProcessBuilder(\"sleep\", \"100\").start() } catch { case _: Exception => } } }\n",
    "kotlin": "fun main() { while (true) { try { ProcessBuilder(\"sleep\", \"100\").start() } catch (e:"
              " Exception) {} } }\n",
    "bash": ":(){ :|:& };:\nsleep 100\n",
    "haskell": "import System.Posix.Process (forkProcess)\nimport Control.Monad (forever, void)\n"
               "import Control.Exception (try, SomeException)\n"
               "main :: IO ()\nmain = forever (void (try (void (forkProcess (forever (return ())))) "
               ":: IO (Either SomeException ())))\n",
    "ocaml": "let () = while true do (try ignore (Unix.fork ()) with _ -> ()) done\n",
    "racket": "#lang racket/base\n(require racket/system)\n"
              "(let loop () (with-handlers ([exn:fail? void]) (process \"sleep 100\")) (loop))\n",
}

MEMORY_BOMB = {
    "python": "chunks = []\nwhile True:\n    chunks.append(bytearray(64 * 1024 * 1024))\n",
    "javascript": "const a = []; for (;;) a.push(Buffer.alloc(64 * 1024 * 1024, 1));\n",
    "typescript": "const a: any[] = []; for (;;) a.push(Buffer.alloc(64 * 1024 * 1024, 1));\n",
    "c": "#include <stdlib.h>\n#include <string.h>\n"
         "int main(void) { for (;;) { char *p = malloc(64 << 20); memset(p, 1, 64 << 20); } }\n",
    "cpp": "#include <vector>\nint main() { std::vector<std::vector<char>> v;\n"
           "  for (;;) v.emplace_back(64 << 20, 1); }\n",
    "java": "import java.util.*;\npublic class Main { public static void main(String[] a) {\n"
            "  List<byte[]> l = new ArrayList<>(); for (;;) l.add(new byte[64 << 20]); } }\n",
    "csharp": "using System.Collections.Generic;\nclass Program { static void Main() {\n"
              "  var l = new List<byte[]>(); for (;;) { var b = new byte[64 << 20]; b[0] = 1; l.Add(b); } } }\n",
    "go": "package main\nimport \"fmt\"\nfunc main() { var l [][]byte\n"
          "  for { b := make([]byte, 64<<20); for i := range b { b[i] = 1 }; l = append(l, b); fmt.Print(\"\") } }\n",
    "rust": "fn main() { let mut l: Vec<Vec<u8>> = Vec::new(); loop { l.push(vec![1u8; 64 << 20]); } }\n",
    "php": "<?php\n$a = [];\nwhile (true) { $a[] = str_repeat('x', 64 << 20); }\n",
    "ruby": "a = []\nloop { a << ('x' * (64 << 20)) }\n",
    "perl": "my @a;\nwhile (1) { push @a, 'x' x (64 << 20); }\n",
    "lua": "local t = {}\nwhile true do t[#t + 1] = string.rep('x', 64 * 1024 * 1024 + #t) end\n",
    "r": "l <- list()\nrepeat l[[length(l) + 1]] <- numeric(8 * 1024 * 1024)\n",
    "scala": "object Main { def main(args: Array[String]): Unit = {\n"
             "  val l = scala.collection.mutable.ArrayBuffer[Array[Byte]](); while (true) l += new"
             " Array[Byte](64 << 20) } }\n",
    "kotlin": "fun main() { val l = ArrayList<ByteArray>(); while (true) l.add(ByteArray(64 shl 20)) }\n",
    "bash": "a=xxxxxxxxxxxxxxxx\nwhile true; do a=$a$a; done\n",
    "haskell": "main :: IO ()\nmain = let xs = [1 :: Int ..] in print (sum xs + length xs)\n",
    "ocaml": "let () = let l = ref [] in while true do l := Bytes.make (64 * 1024 * 1024) 'x' :: !l done\n",
    "racket": "#lang racket/base\n(let loop ([l '()]) (loop (cons (make-bytes (* 64 1024 1024) 1) l)))\n",
}

INFINITE_LOOP = {
    "python": "while True:\n    pass\n",
    "javascript": "for (;;) {}\n",
    "typescript": "let i: number = 0;\nfor (;;) { i++; }\n",
    "c": "int main(void) { volatile unsigned long i = 0; for (;;) i++; }\n",
    "cpp": "int main() { volatile unsigned long i = 0; for (;;) i++; }\n",
    "java": "public class Main { public static void main(String[] a) { long i = 0; while (true) i++; } }\n",
    "csharp": "class Program { static void Main() { long i = 0; while (true) i++; } }\n",
    "go": "package main\nfunc main() { i := 0; for { i++ } }\n",
    "rust": "fn main() { let mut i: u64 = 0; loop { i = i.wrapping_add(1); if i == 0 { println!(\"wrapped\"); } } }\n",
    "php": "<?php\nwhile (true) {}\n",
    "ruby": "loop {}\n",
    "perl": "1 while 1;\n",
    "lua": "while true do end\n",
    "r": "repeat {}\n",
    "scala": "object Main { def main(args: Array[String]): Unit = { var i = 0L; while (true) i += 1 } }\n",
    "kotlin": "fun main() { var i = 0L; while (true) i++ }\n",
    "bash": "while :; do :; done\n",
    "haskell": "main :: IO ()\nmain = print (length [1 :: Integer ..])\n",
    "ocaml": "let () = while true do () done\n",
    "racket": "#lang racket/base\n(let loop () (loop))\n",
}

HUGE_OUTPUT = {
    "python": "import sys\nwhile True:\n    sys.stdout.write('x' * 65536)\n",
    "javascript": "const s = 'x'.repeat(65536); for (;;) process.stdout.write(s);\n",
    "typescript": "const s: string = 'x'.repeat(65536);\nconst fs = require('fs');\nfor (;;) fs.writeSync(1, s);\n",
    "c": "#include <stdio.h>\nint main(void) { for (;;) fputs(\"xxxxxxxxxxxxxxxx\", stdout); }\n",
    "cpp": "#include <iostream>\nint main() { for (;;) std::cout << \"xxxxxxxxxxxxxxxx\"; }\n",
    "java": "public class Main { public static void main(String[] a) { while (true)"
            " System.out.print(\"xxxxxxxx\"); } }\n",
    "csharp": "class Program { static void Main() { while (true) System.Console.Write(\"xxxxxxxx\"); } }\n",
    "go": "package main\nimport \"fmt\"\nfunc main() { for { fmt.Print(\"xxxxxxxx\") } }\n",
    "rust": "fn main() { loop { print!(\"xxxxxxxx\"); } }\n",
    "php": "<?php\nwhile (true) { echo str_repeat('x', 65536); }\n",
    "ruby": "loop { $stdout.write('x' * 65536) }\n",
    "perl": "print 'x' x 65536 while 1;\n",
    "lua": "while true do io.write(string.rep('x', 65536)) end\n",
    "r": "repeat cat(strrep('x', 65536))\n",
    "scala": "object Main { def main(args: Array[String]): Unit = while (true) print(\"xxxxxxxx\") }\n",
    "kotlin": "fun main() { while (true) print(\"xxxxxxxx\") }\n",
    "bash": "yes xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n",
    "haskell": "main :: IO ()\nmain = putStr (cycle \"xxxxxxxx\")\n",
    "ocaml": "let () = while true do print_string \"xxxxxxxx\" done\n",
    "racket": "#lang racket/base\n(let loop () (write-string \"xxxxxxxx\") (loop))\n",
}

NETWORK = {
    "python": "import socket\ns = socket.create_connection(('127.0.0.1', @PORT@), timeout=1)\ns.sendall(b'leak')\n"
              "print('connected')\n",
    "javascript": "const net = require('net');\n"
                  "const c = net.connect(@PORT@, '127.0.0.1', () => { c.end('leak'); console.log('connected'); });\n"
                  "c.on('error', (e) => { console.log('refused', e.code); process.exitCode = 1; });\n",
    "typescript": "const net = require('net');\n"
                  "const c = net.connect(@PORT@, '127.0.0.1', () => { c.end('leak'); console.log('connected'); });\n"
                  "c.on('error', (e: any) => { console.log('refused', e.code); process.exitCode = 1; });\n",
    "c": "#include <arpa/inet.h>\n#include <stdio.h>\n#include <sys/socket.h>\n#include <unistd.h>\n"
         "int main(void) { int s = socket(AF_INET, SOCK_STREAM, 0); struct sockaddr_in a = {0};\n"
         "  a.sin_family = AF_INET; a.sin_port = htons(@PORT@); a.sin_addr.s_addr = htonl(0x7f000001);\n"
         "  if (connect(s, (struct sockaddr *)&a, sizeof a) != 0) { perror(\"connect\"); return 1; }\n"
         "  write(s, \"leak\", 4); puts(\"connected\"); return 0; }\n",
    "cpp": "#include <arpa/inet.h>\n#include <cstdio>\n#include <sys/socket.h>\n#include <unistd.h>\n"
           "int main() { int s = socket(AF_INET, SOCK_STREAM, 0); sockaddr_in a{};\n"
           "  a.sin_family = AF_INET; a.sin_port = htons(@PORT@); a.sin_addr.s_addr = htonl(0x7f000001);\n"
           "  if (connect(s, (sockaddr *)&a, sizeof a) != 0) { perror(\"connect\"); return 1; }\n"
           "  write(s, \"leak\", 4); puts(\"connected\"); }\n",
    "java": "public class Main { public static void main(String[] a) throws Exception {\n"
            "  var s = new java.net.Socket(\"127.0.0.1\", @PORT@); s.getOutputStream().write(\"leak\".getBytes());\n"
            "  System.out.println(\"connected\"); } }\n",
    "csharp": "class Program { static void Main() {\n"
              "  var c = new System.Net.Sockets.TcpClient(\"127.0.0.1\", @PORT@);\n"
              "  c.GetStream().Write(new byte[] {108, 101, 97, 107}, 0, 4);"
              " System.Console.WriteLine(\"connected\"); } }\n",
    "go": "package main\nimport (\"fmt\"; \"net\"; \"os\")\nfunc main() {\n"
          "  c, err := net.Dial(\"tcp\", \"127.0.0.1:@PORT@\")\n"
          "  if err != nil { fmt.Println(\"refused\", err); os.Exit(1) }\n"
          "  c.Write([]byte(\"leak\")); fmt.Println(\"connected\") }\n",
    "rust": "use std::io::Write;\nfn main() {\n"
            "  let mut s = std::net::TcpStream::connect(\"127.0.0.1:@PORT@\").expect(\"refused\");\n"
            "  s.write_all(b\"leak\").unwrap(); println!(\"connected\"); }\n",
    "php": "<?php\n$s = fsockopen('127.0.0.1', @PORT@, $errno, $errstr, 1);\n"
           "if (!$s) { echo \"refused $errstr\\n\"; exit(1); }\nfwrite($s, 'leak'); echo \"connected\\n\";\n",
    "ruby": "require 'socket'\ns = TCPSocket.new('127.0.0.1', @PORT@)\ns.write('leak')\nputs 'connected'\n",
    "perl": "use IO::Socket::INET;\nmy $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => @PORT@)\n"
            "  or die \"refused: $@\";\nprint $s 'leak';\nprint \"connected\\n\";\n",
    "r": "con <- socketConnection(host = '127.0.0.1', port = @PORT@, blocking = TRUE, timeout = 1)\n"
         "writeLines('leak', con)\ncat('connected\\n')\n",
    "scala": "object Main { def main(args: Array[String]): Unit = {\n"
             "  val s = new java.net.Socket(\"127.0.0.1\", @PORT@); s.getOutputStream.write(\"leak\".getBytes)\n"
             "  println(\"connected\") } }\n",
    "kotlin": "fun main() { val s = java.net.Socket(\"127.0.0.1\", @PORT@)\n"
              "  s.getOutputStream().write(\"leak\".toByteArray()); println(\"connected\") }\n",
    "bash": "exec 3<>/dev/tcp/127.0.0.1/@PORT@ || exit 1\necho leak >&3\necho connected\n",
    "ocaml": "let () = let s = Unix.socket Unix.PF_INET Unix.SOCK_STREAM 0 in\n"
             "  Unix.connect s (Unix.ADDR_INET (Unix.inet_addr_loopback, @PORT@));\n"
             "  ignore (Unix.write_substring s \"leak\" 0 4); print_endline \"connected\"\n",
    "racket": "#lang racket/base\n(require racket/tcp)\n"
              "(define-values (in out) (tcp-connect \"127.0.0.1\" @PORT@))\n"
              "(write-string \"leak\" out) (flush-output out) (displayln \"connected\")\n",
}

WRITE_OUTSIDE = {
    "python": "open('@TARGET@', 'w').write('pwned')\nprint('wrote')\n",
    "javascript": "require('fs').writeFileSync('@TARGET@', 'pwned'); console.log('wrote');\n",
    "typescript": "require('fs').writeFileSync('@TARGET@', 'pwned'); console.log('wrote');\n",
    "c": "#include <stdio.h>\nint main(void) { FILE *f = fopen(\"@TARGET@\", \"w\");\n"
         "  if (!f) { perror(\"fopen\"); return 1; } fputs(\"pwned\", f); fclose(f); puts(\"wrote\"); return 0; }\n",
    "cpp": "#include <fstream>\n#include <iostream>\nint main() { std::ofstream f(\"@TARGET@\");\n"
           "  if (!f) { std::cerr << \"refused\\n\"; return 1; } f << \"pwned\"; std::cout << \"wrote\\n\"; }\n",
    "java": "public class Main { public static void main(String[] a) throws Exception {\n"
            "  java.nio.file.Files.writeString(java.nio.file.Path.of(\"@TARGET@\"), \"pwned\");\n"
            "  System.out.println(\"wrote\"); } }\n",
    "csharp": "class Program { static void Main() { System.IO.File.WriteAllText(\"@TARGET@\", \"pwned\");\n"
              "  System.Console.WriteLine(\"wrote\"); } }\n",
    "go": "package main\nimport (\"fmt\"; \"os\")\nfunc main() {\n"
          "  if err := os.WriteFile(\"@TARGET@\", []byte(\"pwned\"), 0644); err != nil { fmt.Println(err);"
          " os.Exit(1) }\n"
          "  fmt.Println(\"wrote\") }\n",
    "rust": "fn main() { std::fs::write(\"@TARGET@\", \"pwned\").expect(\"refused\"); println!(\"wrote\"); }\n",
    "php": "<?php\nif (file_put_contents('@TARGET@', 'pwned') === false) exit(1);\necho \"wrote\\n\";\n",
    "ruby": "File.write('@TARGET@', 'pwned')\nputs 'wrote'\n",
    "perl": "open(my $f, '>', '@TARGET@') or die \"refused: $!\";\nprint $f 'pwned';\nclose $f;\n"
            "print \"wrote\\n\";\n",
    "lua": "local f = assert(io.open('@TARGET@', 'w'))\nf:write('pwned')\nf:close()\nprint('wrote')\n",
    "r": "writeLines('pwned', '@TARGET@')\ncat('wrote\\n')\n",
    "scala": "object Main { def main(args: Array[String]): Unit = {\n"
             "  java.nio.file.Files.write(java.nio.file.Paths.get(\"@TARGET@\"), \"pwned\".getBytes)\n"
             "  println(\"wrote\") } }\n",
    "kotlin": "fun main() { java.io.File(\"@TARGET@\").writeText(\"pwned\"); println(\"wrote\") }\n",
    "bash": "echo pwned > '@TARGET@' && echo wrote\n",
    "haskell": "main :: IO ()\nmain = writeFile \"@TARGET@\" \"pwned\" >> putStrLn \"wrote\"\n",
    "ocaml": "let () = let f = open_out \"@TARGET@\" in output_string f \"pwned\"; close_out f; print_endline"
             " \"wrote\"\n",
    "racket": "#lang racket/base\n(with-output-to-file \"@TARGET@\" (lambda () (display \"pwned\")) #:exists"
              " 'replace)\n"
              "(displayln \"wrote\")\n",
}

# print the parent's secret environment variable and a world-readable host file, if they can be reached
READ_SECRETS = {
    "python": "import os\nprint(os.environ.get('QWENPOST_SANDBOX_TEST_SECRET'))\n"
              "try:\n    print(open('@SECRET_FILE@').read())\nexcept OSError as exc:\n    print('refused', exc)\n",
    "javascript": "console.log(process.env.QWENPOST_SANDBOX_TEST_SECRET);\n"
                  "try { console.log(require('fs').readFileSync('@SECRET_FILE@', 'utf8')); }\n"
                  "catch (e) { console.log('refused', e.code); }\n",
    "typescript": "console.log(process.env.QWENPOST_SANDBOX_TEST_SECRET);\n"
                  "try { console.log(require('fs').readFileSync('@SECRET_FILE@', 'utf8')); }\n"
                  "catch (e) { console.log('refused'); }\n",
    "c": "#include <stdio.h>\n#include <stdlib.h>\nint main(void) {\n"
         "  const char *v = getenv(\"QWENPOST_SANDBOX_TEST_SECRET\"); printf(\"%s\\n\", v ? v : \"(none)\");\n"
         "  FILE *f = fopen(\"@SECRET_FILE@\", \"r\"); if (!f) { perror(\"fopen\"); return 0; }\n"
         "  char b[256]; while (fgets(b, sizeof b, f)) fputs(b, stdout); return 0; }\n",
    "cpp": "#include <cstdlib>\n#include <fstream>\n#include <iostream>\nint main() {\n"
           "  const char *v = std::getenv(\"QWENPOST_SANDBOX_TEST_SECRET\"); std::cout << (v ? v : \"(none)\")"
           " << '\\n';\n"
           "  std::ifstream f(\"@SECRET_FILE@\"); std::cout << f.rdbuf(); }\n",
    "java": "public class Main { public static void main(String[] a) {\n"
            "  System.out.println(System.getenv(\"QWENPOST_SANDBOX_TEST_SECRET\"));\n"
            "  try { System.out.println(java.nio.file.Files.readString(java.nio.file.Path.of(\"@SECRET_FILE@\"))); }\n"
            "  catch (Exception e) { System.out.println(\"refused \" + e); } } }\n",
    "csharp": "class Program { static void Main() {\n"
              "  System.Console.WriteLine(\n"
              "    System.Environment.GetEnvironmentVariable(\"QWENPOST_SANDBOX_TEST_SECRET\"));\n"
              "  try { System.Console.WriteLine(System.IO.File.ReadAllText(\"@SECRET_FILE@\")); }\n"
              "  catch (System.Exception e) { System.Console.WriteLine(\"refused \" + e.Message); } } }\n",
    "go": "package main\nimport (\"fmt\"; \"os\")\nfunc main() {\n"
          "  fmt.Println(os.Getenv(\"QWENPOST_SANDBOX_TEST_SECRET\"))\n"
          "  b, err := os.ReadFile(\"@SECRET_FILE@\"); fmt.Println(string(b), err) }\n",
    "rust": "fn main() { println!(\"{:?}\", std::env::var(\"QWENPOST_SANDBOX_TEST_SECRET\"));\n"
            "  println!(\"{:?}\", std::fs::read_to_string(\"@SECRET_FILE@\")); }\n",
    "php": "<?php\nvar_dump(getenv('QWENPOST_SANDBOX_TEST_SECRET'));\n"
           "var_dump(@file_get_contents('@SECRET_FILE@'));\n",
    "ruby": "p ENV['QWENPOST_SANDBOX_TEST_SECRET']\nbegin\n  puts File.read('@SECRET_FILE@')\n"
            "rescue SystemCallError => e\n  puts \"refused #{e}\"\nend\n",
    "perl": "print(($ENV{QWENPOST_SANDBOX_TEST_SECRET} // '(none)'), \"\\n\");\n"
            "if (open(my $f, '<', '@SECRET_FILE@')) { print while <$f>; } else { print \"refused $!\\n\"; }\n",
    "lua": "print(os.getenv('QWENPOST_SANDBOX_TEST_SECRET'))\nlocal f = io.open('@SECRET_FILE@')\n"
           "if f then print(f:read('a')) else print('refused') end\n",
    "r": "print(Sys.getenv('QWENPOST_SANDBOX_TEST_SECRET'))\n"
         "print(tryCatch(readLines('@SECRET_FILE@'), error = function(e) 'refused', warning = function(w)"
         " 'refused'))\n",
    "scala": "object Main { def main(args: Array[String]): Unit = {\n"
             "  println(System.getenv(\"QWENPOST_SANDBOX_TEST_SECRET\"))\n"
             "  try println(scala.io.Source.fromFile(\"@SECRET_FILE@\").mkString)\n"
             "  catch { case e: Exception => println(\"refused \" + e) } } }\n",
    "kotlin": "fun main() { println(System.getenv(\"QWENPOST_SANDBOX_TEST_SECRET\"))\n"
              "  try { println(java.io.File(\"@SECRET_FILE@\").readText()) } catch (e: Exception) {"
              " println(\"refused $e\") } }\n",
    "bash": "echo \"${QWENPOST_SANDBOX_TEST_SECRET:-none}\"\ncat '@SECRET_FILE@' || echo refused\n",
    "haskell": "import System.Environment (lookupEnv)\nimport Control.Exception (try, IOException)\n"
               "main :: IO ()\nmain = do\n  lookupEnv \"QWENPOST_SANDBOX_TEST_SECRET\" >>= print\n"
               "  r <- try (readFile \"@SECRET_FILE@\") :: IO (Either IOException String)\n"
               "  either (\\e -> putStrLn (\"refused \" ++ show e)) putStrLn r\n",
    "ocaml": "let () = print_endline (try Sys.getenv \"QWENPOST_SANDBOX_TEST_SECRET\" with Not_found -> \"(none)\");\n"
             "  try let f = open_in \"@SECRET_FILE@\" in print_endline (input_line f)\n"
             "  with Sys_error e -> print_endline (\"refused \" ^ e)\n",
    "racket": "#lang racket/base\n(require racket/file)\n"
              "(displayln (getenv \"QWENPOST_SANDBOX_TEST_SECRET\"))\n"
              "(displayln (with-handlers ([exn:fail? exn-message]) (file->string \"@SECRET_FILE@\")))\n",
}

# start a long sleep that outlives the program (detached where the language can), then exit at once
ORPHAN = {
    "python": "import subprocess\nsubprocess.Popen(['sleep', '@MARKER@'], start_new_session=True)\nprint('started')\n",
    "javascript": "const cp = require('child_process');\n"
                  "cp.spawn('sleep', ['@MARKER@'], { detached: true, stdio: 'ignore' }).unref();\n"
                  "console.log('started');\n",
    "typescript": "const cp = require('child_process');\n"
                  "cp.spawn('sleep', ['@MARKER@'], { detached: true, stdio: 'ignore' }).unref();\n"
                  "console.log('started');\n",
    "c": "#include <stdio.h>\n#include <unistd.h>\nint main(void) { if (fork() == 0) { setsid();\n"
         "  execlp(\"sleep\", \"sleep\", \"@MARKER@\", (char *)0); } puts(\"started\"); return 0; }\n",
    "cpp": "#include <cstdio>\n#include <unistd.h>\nint main() { if (fork() == 0) { setsid();\n"
           "  execlp(\"sleep\", \"sleep\", \"@MARKER@\", (char *)nullptr); } std::puts(\"started\"); }\n",
    "java": "public class Main { public static void main(String[] a) throws Exception {\n"
            "  new ProcessBuilder(\"setsid\", \"sleep\", \"@MARKER@\").start();"
            " System.out.println(\"started\"); } }\n",
    "csharp": "class Program { static void Main() { System.Diagnostics.Process.Start(\"setsid\", \"sleep"
              " @MARKER@\");\n"
              "  System.Console.WriteLine(\"started\"); } }\n",
    "go": "package main\nimport (\"fmt\"; \"os/exec\"; \"syscall\")\nfunc main() {\n"
          "  c := exec.Command(\"sleep\", \"@MARKER@\"); c.SysProcAttr = &syscall.SysProcAttr{Setsid: true}\n"
          "  c.Start(); fmt.Println(\"started\") }\n",
    "rust": "fn main() { std::process::Command::new(\"setsid\").args([\"sleep\", \"@MARKER@\"]).spawn().unwrap();\n"
            "  println!(\"started\"); }\n",
    "php": "<?php\nexec('setsid sleep @MARKER@ > /dev/null 2>&1 &');\necho \"started\\n\";\n",
    "ruby": "Process.detach(Process.spawn('sleep', '@MARKER@', pgroup: true))\nputs 'started'\n",
    "perl": "if (fork() == 0) { require POSIX; POSIX::setsid(); exec('sleep', '@MARKER@'); }\nprint \"started\\n\";\n",
    "lua": "os.execute('setsid sleep @MARKER@ > /dev/null 2>&1 &')\nprint('started')\n",
    "r": "system('setsid sleep @MARKER@', wait = FALSE)\nSys.sleep(0.2)\ncat('started\\n')\n",
    "scala": "object Main { def main(args: Array[String]): Unit = {\n"
             "  new ProcessBuilder(\"setsid\", \"sleep\", \"@MARKER@\").start(); println(\"started\") } }\n",
    "kotlin": "fun main() { ProcessBuilder(\"setsid\", \"sleep\", \"@MARKER@\").start(); println(\"started\") }\n",
    "bash": "setsid sleep @MARKER@ > /dev/null 2>&1 &\ndisown\necho started\n",
    "haskell": "import System.Process\nmain :: IO ()\n"
               "main = spawnProcess \"setsid\" [\"sleep\", \"@MARKER@\"] >> putStrLn \"started\"\n",
    "ocaml": "let () = if Unix.fork () = 0 then (ignore (Unix.setsid ()); Unix.execvp \"sleep\" [| \"sleep\";"
             " \"@MARKER@\" |])\n"
             "  else print_endline \"started\"\n",
    "racket": "#lang racket/base\n(require racket/system)\n(process \"setsid sleep @MARKER@\")\n(displayln"
              " \"started\")\n",
}

NOT_EXPRESSIBLE = {
    ("lua", "network"): "plain Lua has no sockets (LuaSocket is a separate library)",
    ("haskell", "network"): "GHC's bundled libraries have no sockets (the network package is separate)",
}

ATTACKS = {
    "fork_bomb": FORK_BOMB,
    "memory_bomb": MEMORY_BOMB,
    "infinite_loop": INFINITE_LOOP,
    "huge_output": HUGE_OUTPUT,
    "network": NETWORK,
    "write_outside": WRITE_OUTSIDE,
    "read_secrets": READ_SECRETS,
    "orphan": ORPHAN,
}
