// Command expcount prints, for a package directory, its non-test lines, its
// exported identifiers (and exported struct fields) and its longest
// function: the figures of issue 11's closing note.
//
//	go run ./internal/tools/expcount ./replica
package main

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"strings"
)

func main() {
	fset := token.NewFileSet()
	pkgs, err := parser.ParseDir(fset, os.Args[1], func(fi os.FileInfo) bool { return !strings.HasSuffix(fi.Name(), "_test.go") }, 0)
	if err != nil {
		panic(err)
	}
	n, fields, lines := 0, 0, 0
	longest, lname := 0, ""
	for _, p := range pkgs {
		for _, f := range p.Files {
			lines += fset.Position(f.End()).Line
			for _, d := range f.Decls {
				switch d := d.(type) {
				case *ast.FuncDecl:
					l := fset.Position(d.End()).Line - fset.Position(d.Pos()).Line + 1
					if l > longest {
						longest, lname = l, d.Name.Name
					}
					if d.Name.IsExported() {
						if d.Recv != nil {
							t := d.Recv.List[0].Type
							if s, ok := t.(*ast.StarExpr); ok {
								t = s.X
							}
							if id, ok := t.(*ast.Ident); ok && !id.IsExported() {
								continue
							}
						}
						n++
					}
				case *ast.GenDecl:
					for _, s := range d.Specs {
						switch s := s.(type) {
						case *ast.TypeSpec:
							if s.Name.IsExported() {
								n++
								if st, ok := s.Type.(*ast.StructType); ok {
									for _, fl := range st.Fields.List {
										for _, nm := range fl.Names {
											if nm.IsExported() {
												fields++
											}
										}
									}
								}
							}
						case *ast.ValueSpec:
							for _, nm := range s.Names {
								if nm.IsExported() {
									n++
								}
							}
						}
					}
				}
			}
		}
	}
	fmt.Printf("%s: %d lines, %d exported identifiers (+%d exported struct fields), longest func %s %d lines\n", os.Args[1], lines, n, fields, lname, longest)
}
